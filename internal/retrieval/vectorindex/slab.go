package vectorindex

import "unsafe"

// A slab holds the vectors of one chunk: the int8 codes the scan reads and
// the float32 values the re-ranking reads. Large slabs are mapped outside
// the Go heap (slab_mmap.go where the system allows), so that hundreds of
// megabytes of vectors neither count towards the garbage collector's heap
// goal — which would let garbage grow by as much before a collection — nor
// are ever scanned or moved by it.
type slab struct {
	codes []int8
	vals  []float32
	raw   []byte // the mapping, when mapped
}

// mmapMin is the smallest slab worth a mapping of its own.
const mmapMin = 1 << 20

func newSlab(vectors, dim int) slab {
	nc, nv := vectors*dim, vectors*dim
	size := nc + 4*nv
	if size >= mmapMin {
		if raw, ok := mapAnon(size); ok {
			return slab{
				vals:  unsafe.Slice((*float32)(unsafe.Pointer(&raw[0])), nv),
				codes: unsafe.Slice((*int8)(unsafe.Pointer(&raw[4*nv])), nc),
				raw:   raw,
			}
		}
	}
	return slab{codes: make([]int8, nc), vals: make([]float32, nv)}
}

// free returns a mapped slab's memory; the slab must not be used after.
func (s *slab) free() {
	if s.raw != nil {
		unmap(s.raw)
	}
	*s = slab{}
}
