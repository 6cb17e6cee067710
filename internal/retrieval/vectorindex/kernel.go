package vectorindex

// The kernels: dot products of a query with stored vectors. Vectors are
// padded with zeros to a multiple of pad dimensions, so the assembly
// versions (kernel_amd64.s) need no tail loop; the Go versions here serve
// other architectures and CPUs without AVX2, and check the assembly in
// tests.

// pad is the multiple every stored and query vector is padded to.
const pad = 32

// padded rounds dim up to a multiple of pad.
func padded(dim int) int { return (dim + pad - 1) / pad * pad }

// dotsInt8Go sets out[i] to the dot product of q with the i-th vector of
// vecs, for len(out) vectors of len(q) int8 values each.
func dotsInt8Go(q, vecs []int8, out []int32) {
	d := len(q)
	for i := range out {
		out[i] = dotInt8Go(q, vecs[i*d:(i+1)*d])
	}
}

func dotInt8Go(q, v []int8) int32 {
	v = v[:len(q)]
	var s0, s1, s2, s3 int32
	for i := 0; i+4 <= len(q); i += 4 {
		s0 += int32(q[i]) * int32(v[i])
		s1 += int32(q[i+1]) * int32(v[i+1])
		s2 += int32(q[i+2]) * int32(v[i+2])
		s3 += int32(q[i+3]) * int32(v[i+3])
	}
	return s0 + s1 + s2 + s3
}

func dotF32Go(q, v []float32) float32 {
	v = v[:len(q)]
	var s0, s1, s2, s3 float32
	for i := 0; i+4 <= len(q); i += 4 {
		s0 += q[i] * v[i]
		s1 += q[i+1] * v[i+1]
		s2 += q[i+2] * v[i+2]
		s3 += q[i+3] * v[i+3]
	}
	return s0 + s1 + s2 + s3
}
