package vectorindex

// hasAVX2 reports whether the CPU and the OS support AVX2 and FMA (the OS
// must save the YMM registers: OSXSAVE and XCR0 bits 1 and 2).
var hasAVX2 = func() bool {
	_, _, c1, _ := cpuid(1, 0)
	const fma, osxsave, avx = 1 << 12, 1 << 27, 1 << 28
	if c1&(fma|osxsave|avx) != fma|osxsave|avx {
		return false
	}
	if xcr0, _ := xgetbv(); xcr0&6 != 6 {
		return false
	}
	_, b7, _, _ := cpuid(7, 0)
	return b7&(1<<5) != 0
}()

func cpuid(eax, ecx uint32) (a, b, c, d uint32)
func xgetbv() (eax, edx uint32)

//go:noescape
func dotsInt8AVX2(q, vecs *int8, dim, n int, out *int32)

//go:noescape
func dotF32AVX2(q, v *float32, dim int) float32

// dotsInt8 sets out[i] to the dot product of q with the i-th vector of vecs;
// len(q) is a multiple of pad.
func dotsInt8(q, vecs []int8, out []int32) {
	if len(out) == 0 {
		return
	}
	if !hasAVX2 {
		dotsInt8Go(q, vecs, out)
		return
	}
	_ = vecs[len(out)*len(q)-1]
	dotsInt8AVX2(&q[0], &vecs[0], len(q), len(out), &out[0])
}

// dotF32 is the dot product of q and v; len(q) is a multiple of pad.
func dotF32(q, v []float32) float32 {
	if !hasAVX2 {
		return dotF32Go(q, v)
	}
	_ = v[len(q)-1]
	return dotF32AVX2(&q[0], &v[0], len(q))
}
