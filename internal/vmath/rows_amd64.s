//go:build amd64 && !purego

#include "textflag.h"

// func maxInto512(dst, src *float32, n int)
TEXT ·maxInto512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX

maxloop:
	VMOVUPS (DI), Z0
	VMAXPS  (SI), Z0, Z0 // the second source (src) when either is NaN
	VMOVUPS Z0, (DI)
	ADDQ    $64, DI
	ADDQ    $64, SI
	DECQ    CX
	JNE     maxloop
	VZEROUPPER
	RET

// func subInto512(dst, a, b *float32, n int)
TEXT ·subInto512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $4, CX

subloop:
	VMOVUPS (SI), Z0
	VSUBPS  (DX), Z0, Z0 // a − b
	VMOVUPS Z0, (DI)
	ADDQ    $64, DI
	ADDQ    $64, SI
	ADDQ    $64, DX
	DECQ    CX
	JNE     subloop
	VZEROUPPER
	RET

// func accum512(dst *float64, src *float32, n int)
TEXT ·accum512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX

accloop:
	VCVTPS2PD (SI), Z0   // src[0:8] as float64
	VCVTPS2PD 32(SI), Z1 // src[8:16]
	VADDPD    (DI), Z0, Z0
	VADDPD    64(DI), Z1, Z1
	VMOVUPD   Z0, (DI)
	VMOVUPD   Z1, 64(DI)
	ADDQ      $64, SI
	ADDQ      $128, DI
	DECQ      CX
	JNE       accloop
	VZEROUPPER
	RET
