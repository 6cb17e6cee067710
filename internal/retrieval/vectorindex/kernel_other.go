//go:build !amd64

package vectorindex

const hasAVX2 = false

func dotsInt8(q, vecs []int8, out []int32) { dotsInt8Go(q, vecs, out) }

func dotF32(q, v []float32) float32 { return dotF32Go(q, v) }
