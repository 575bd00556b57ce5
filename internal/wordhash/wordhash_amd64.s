//go:build amd64 && !purego

#include "textflag.h"

// func blocks512(h *[64]uint64, p *byte, n int)
//
// Lanes 8k to 8k+7 in Zk (k = 0…7); per block of 512 bytes each lane does
// x = h ^ (h >> 29) ^ w (one VPTERNLOGQ); x ·= m1; x ^= x >> 32;
// h = x·m2. Eight independent chains keep the multipliers busy while the
// loads stream; software prefetch 4 KiB ahead keeps more lines in flight
// than the hardware prefetcher alone (prefetching past the end is
// harmless: PREFETCHT0 never faults).
TEXT ·blocks512(SB), NOSPLIT, $0-24
	MOVQ h+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ $0x9e3779b97f4a7c15, AX
	VPBROADCASTQ AX, Z8
	MOVQ $0xff51afd7ed558ccd, AX
	VPBROADCASTQ AX, Z9
	VMOVDQU64 (DI), Z0
	VMOVDQU64 64(DI), Z1
	VMOVDQU64 128(DI), Z2
	VMOVDQU64 192(DI), Z3
	VMOVDQU64 256(DI), Z4
	VMOVDQU64 320(DI), Z5
	VMOVDQU64 384(DI), Z6
	VMOVDQU64 448(DI), Z7
	TESTQ CX, CX
	JZ    done

loop:
	// The lines 4 KiB ahead (measured: 256 MB ~15% faster than without).
	PREFETCHT0 4096(SI)
	PREFETCHT0 4160(SI)
	PREFETCHT0 4224(SI)
	PREFETCHT0 4288(SI)
	PREFETCHT0 4352(SI)
	PREFETCHT0 4416(SI)
	PREFETCHT0 4480(SI)
	PREFETCHT0 4544(SI)
	VPSRLQ $29, Z0, Z10
	VPSRLQ $29, Z1, Z11
	VPSRLQ $29, Z2, Z12
	VPSRLQ $29, Z3, Z13
	VPSRLQ $29, Z4, Z14
	VPSRLQ $29, Z5, Z15
	VPSRLQ $29, Z6, Z16
	VPSRLQ $29, Z7, Z17
	VPTERNLOGQ $0x96, (SI), Z10, Z0
	VPTERNLOGQ $0x96, 64(SI), Z11, Z1
	VPTERNLOGQ $0x96, 128(SI), Z12, Z2
	VPTERNLOGQ $0x96, 192(SI), Z13, Z3
	VPTERNLOGQ $0x96, 256(SI), Z14, Z4
	VPTERNLOGQ $0x96, 320(SI), Z15, Z5
	VPTERNLOGQ $0x96, 384(SI), Z16, Z6
	VPTERNLOGQ $0x96, 448(SI), Z17, Z7
	VPMULLQ Z8, Z0, Z0
	VPMULLQ Z8, Z1, Z1
	VPMULLQ Z8, Z2, Z2
	VPMULLQ Z8, Z3, Z3
	VPMULLQ Z8, Z4, Z4
	VPMULLQ Z8, Z5, Z5
	VPMULLQ Z8, Z6, Z6
	VPMULLQ Z8, Z7, Z7
	VPSRLQ $32, Z0, Z10
	VPSRLQ $32, Z1, Z11
	VPSRLQ $32, Z2, Z12
	VPSRLQ $32, Z3, Z13
	VPSRLQ $32, Z4, Z14
	VPSRLQ $32, Z5, Z15
	VPSRLQ $32, Z6, Z16
	VPSRLQ $32, Z7, Z17
	VPXORQ Z10, Z0, Z0
	VPXORQ Z11, Z1, Z1
	VPXORQ Z12, Z2, Z2
	VPXORQ Z13, Z3, Z3
	VPXORQ Z14, Z4, Z4
	VPXORQ Z15, Z5, Z5
	VPXORQ Z16, Z6, Z6
	VPXORQ Z17, Z7, Z7
	VPMULLQ Z9, Z0, Z0
	VPMULLQ Z9, Z1, Z1
	VPMULLQ Z9, Z2, Z2
	VPMULLQ Z9, Z3, Z3
	VPMULLQ Z9, Z4, Z4
	VPMULLQ Z9, Z5, Z5
	VPMULLQ Z9, Z6, Z6
	VPMULLQ Z9, Z7, Z7
	ADDQ $512, SI
	DECQ CX
	JNZ  loop

done:
	VMOVDQU64 Z0, (DI)
	VMOVDQU64 Z1, 64(DI)
	VMOVDQU64 Z2, 128(DI)
	VMOVDQU64 Z3, 192(DI)
	VMOVDQU64 Z4, 256(DI)
	VMOVDQU64 Z5, 320(DI)
	VMOVDQU64 Z6, 384(DI)
	VMOVDQU64 Z7, 448(DI)
	VZEROUPPER
	RET

// STEP2 steps lanes off/8 to off/8+3 (state at off(DI), words at off(SI)).
// AVX2 has no 64-bit multiply: x·m = lo(x)·lo(m) + (hi(x)·lo(m) +
// lo(x)·hi(m))<<32 from three VPMULUDQ (Y12/Y14: m1/m2, low halves
// used; Y13/Y15: their high halves). hi(x ^ x>>32) = hi(x), in Y1.
#define STEP2(off) \
	VMOVDQU  off(DI), Y0    \
	VPSRLQ   $29, Y0, Y1    \
	VPXOR    Y1, Y0, Y0     \
	VPXOR    off(SI), Y0, Y0 \
	VPMULUDQ Y12, Y0, Y1    \
	VPSRLQ   $32, Y0, Y2    \
	VPMULUDQ Y12, Y2, Y2    \
	VPMULUDQ Y13, Y0, Y3    \
	VPADDQ   Y3, Y2, Y2     \
	VPSLLQ   $32, Y2, Y2    \
	VPADDQ   Y2, Y1, Y0     \
	VPSRLQ   $32, Y0, Y1    \
	VPXOR    Y1, Y0, Y0     \
	VPMULUDQ Y14, Y0, Y2    \
	VPMULUDQ Y14, Y1, Y1    \
	VPMULUDQ Y15, Y0, Y3    \
	VPADDQ   Y3, Y1, Y1     \
	VPSLLQ   $32, Y1, Y1    \
	VPADDQ   Y1, Y2, Y0     \
	VMOVDQU  Y0, off(DI)

// func blocks256(h *[64]uint64, p *byte, n int)
//
// The same steps with AVX2, four lanes a register; the lanes' states stay
// in h (in L1) between blocks.
TEXT ·blocks256(SB), NOSPLIT, $0-24
	MOVQ h+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ $0x9e3779b97f4a7c15, AX
	MOVQ AX, X12
	VPBROADCASTQ X12, Y12
	SHRQ $32, AX
	MOVQ AX, X13
	VPBROADCASTQ X13, Y13
	MOVQ $0xff51afd7ed558ccd, AX
	MOVQ AX, X14
	VPBROADCASTQ X14, Y14
	SHRQ $32, AX
	MOVQ AX, X15
	VPBROADCASTQ X15, Y15
	TESTQ CX, CX
	JZ    done2

loop2:
	STEP2(0)
	STEP2(32)
	STEP2(64)
	STEP2(96)
	STEP2(128)
	STEP2(160)
	STEP2(192)
	STEP2(224)
	STEP2(256)
	STEP2(288)
	STEP2(320)
	STEP2(352)
	STEP2(384)
	STEP2(416)
	STEP2(448)
	STEP2(480)
	ADDQ $512, SI
	DECQ CX
	JNZ  loop2

done2:
	VZEROUPPER
	RET
