#include "textflag.h"

// func cpuid(eax, ecx uint32) (a, b, c, d uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL eax+0(FP), AX
	MOVL ecx+4(FP), CX
	CPUID
	MOVL AX, a+8(FP)
	MOVL BX, b+12(FP)
	MOVL CX, c+16(FP)
	MOVL DX, d+20(FP)
	RET

// func xgetbv() (eax, edx uint32)
TEXT ·xgetbv(SB), NOSPLIT, $0-8
	MOVL $0, CX
	XGETBV
	MOVL AX, eax+0(FP)
	MOVL DX, edx+4(FP)
	RET

// func dotsInt8AVX2(q, vecs *int8, dim, n int, out *int32)
//
// For each of n vectors of dim int8 values (dim a multiple of 32) stored
// one after the other at vecs, writes its dot product with q to out. 32
// values at a time: the vector's absolute values (unsigned) times the
// query's values with the vector's signs (VPABSB, VPSIGNB) are multiplied
// and summed in pairs into int16 lanes (VPMADDUBSW), then into int32 lanes
// (VPMADDWD by ones). Codes are in [-127, 127], so a pair sums to at most
// 2·127·127 and nothing saturates; this is half the instructions of
// widening both sides to int16 first.
TEXT ·dotsInt8AVX2(SB), NOSPLIT, $0-40
	MOVQ q+0(FP), AX
	MOVQ vecs+8(FP), SI
	MOVQ dim+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ out+32(FP), DI
	TESTQ CX, CX
	JZ idone
	VPCMPEQW Y15, Y15, Y15
	VPSRLW $15, Y15, Y15 // int16 ones
ivec:
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	MOVQ AX, R8
	MOVQ DX, R9
iloop:
	VMOVDQU (SI), Y6
	VMOVDQU (R8), Y4
	VPABSB Y6, Y7
	VPSIGNB Y6, Y4, Y4
	VPMADDUBSW Y4, Y7, Y4
	VPMADDWD Y15, Y4, Y4
	VPADDD Y4, Y0, Y0
	ADDQ $32, R8
	ADDQ $32, SI
	SUBQ $32, R9
	JNZ iloop
	VPADDD Y1, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD X1, X0, X0
	VPHADDD X0, X0, X0
	VPHADDD X0, X0, X0
	VMOVD X0, (DI)
	ADDQ $4, DI
	DECQ CX
	JNZ ivec
	VZEROUPPER
idone:
	RET

// func dotF32AVX2(q, v *float32, dim int) float32
//
// The dot product of two vectors of dim float32 values (dim a multiple of
// 32), with four independent FMA accumulators.
TEXT ·dotF32AVX2(SB), NOSPLIT, $0-28
	MOVQ q+0(FP), AX
	MOVQ v+8(FP), SI
	MOVQ dim+16(FP), DX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
floop:
	VMOVUPS (AX), Y4
	VMOVUPS 32(AX), Y5
	VMOVUPS 64(AX), Y6
	VMOVUPS 96(AX), Y7
	VFMADD231PS (SI), Y4, Y0
	VFMADD231PS 32(SI), Y5, Y1
	VFMADD231PS 64(SI), Y6, Y2
	VFMADD231PS 96(SI), Y7, Y3
	ADDQ $128, AX
	ADDQ $128, SI
	SUBQ $32, DX
	JNZ floop
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET
