package gemm

import "unsafe"

// Small computes C = op(A)·op(B), or C += op(A)·op(B) when accumulate is
// set, with the operands of Gemm, for the many tiny products of attention
// (one per sequence and head: 64×64×64 at BERT-S). Its values equal
// Gemm's bit for bit.
//
// Gemm's fixed costs (a pooled buffer, closures per block, packing both
// operands into panels) are a large part of a product this small. Small
// reads A in place (transposed or not: the micro-kernel takes any stride)
// and a row-major B in place, runs on the calling goroutine, and never
// reads outside the operands: a ragged last row panel is computed
// backwards from the last row (the kernel stores only its first rows,
// which are then the last rows of C), by a 4-row kernel when at most 4
// rows remain (64 = 5·12 + 4), and a ragged last column panel is shifted
// left to end at the last column, with a mask that keeps the columns
// already written untouched. Only a transposed B is packed. Without
// accumulate, tiles store over C rather than clearing and adding to it
// (when n is a multiple of 32). Measured on the attention shapes
// (BenchmarkAttentionShapes): 2.0–2.3 µs of CPU per 64×64×64 product
// against Gemm's 3.3–3.5.
//
// Products the float32 AVX-512 kernel does not serve this way (float64,
// other kernels, m < 4, n > 1,024, empty) are Gemm's.
func Small[T Float](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, c []T, ldc int, accumulate bool) {
	a32, ok := any(a).([]float32)
	pa := active
	if !ok || !smallPath(pa) || m < 4 || n == 0 || k == 0 || n > nc {
		Gemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate)
		return
	}
	b32, c32 := any(b).([]float32), any(c).([]float32)
	// Blocks of kc steps, each added to C, as Gemm sums them.
	for p0 := 0; p0 < k; p0 += kc {
		ao, bo := p0, p0*ldb // op(A)(0, p0), op(B)(p0, 0)
		if transA {
			ao = p0 * lda
		}
		if transB {
			bo = p0
		}
		small32(pa, transA, transB, m, n, min(kc, k-p0), a32[ao:], lda, b32[bo:], ldb, c32, ldc, accumulate || p0 > 0)
	}
}

func small32(pa *path, transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, accumulate bool) {
	mr, nr := pa.mr, pa.nr
	// The assembly cannot check bounds: the last values read and written.
	_ = c[(m-1)*ldc+n-1]
	sp, si := 1, lda // A(i, p) at a[p*sp + i*si]
	if transA {
		sp, si = lda, 1
		_ = a[(k-1)*lda+m-1]
	} else {
		_ = a[(m-1)*lda+k-1]
	}
	// Every element of C is written by one tile: with set (not
	// accumulating, no half-masked column panel for smallEdge) the tiles
	// store over C, else C is cleared first when not accumulating.
	set := !accumulate && n%nr == 0
	if !accumulate && !set {
		for i := range m {
			clear(c[i*ldc : i*ldc+n])
		}
	}
	// B's column panels: read in place (rows ldb apart) or, transposed,
	// packed (rows nr apart, the ragged last panel zero-padded).
	if transB {
		_ = b[(n-1)*ldb+k-1]
	} else {
		_ = b[(k-1)*ldb+n-1]
	}
	bd, sb := b, ldb
	packed := transB || n < nr // a row-major B narrower than a panel: padded
	if packed {
		buf := pools.f32.Get().(*buffers[float32])
		defer pools.f32.Put(buf)
		packB(pa, transB, b, ldb, 0, 0, k, n, buf.b)
		bd, sb = buf.b, nr
	}
	full := 0 // rows of the full row panels
	if m >= mr {
		full = m / mr * mr
	}
	for j0 := 0; j0 < n; j0 += nr {
		w := min(nr, n-j0)
		// The panel's first column in C and its columns to write (bits
		// of a mask over the tile's nr columns).
		cj, mask := j0, uint32(1)<<w-1
		bp := &bd[j0*k] // packed: panel j0/nr
		if !packed {
			if w < nr { // shifted left to end at column n
				cj, mask = n-nr, ^(uint32(1)<<(nr-w) - 1)
			}
			bp = &bd[cj]
		}
		for i0 := 0; i0 < full; i0 += mr {
			ap, ct := &a[i0*si], &c[i0*ldc+cj]
			if w == nr && !set {
				pa.k32(k, ap, sp, si, bp, sb, ct, ldc)
			} else {
				smallTile(k, ap, sp, si, bp, sb, ct, ldc, mr, mask, set)
			}
		}
		// The last rows, rem < mr: one 12-row tile when more than 8
		// remain below a full panel, else 4 rows at a time (the 4-row
		// kernel); the last tile runs backwards from row m-1 (the kernel
		// stores its first rows, the last of C), so that no row past m-1
		// (nor before row 0: m ≥ 4) is read.
		rem, i0 := m-full, full
		for (rem <= 8 || full == 0) && rem > 4 {
			smallTile(k, &a[i0*si], sp, si, bp, sb, &c[i0*ldc+cj], ldc, 4, mask, set)
			rem, i0 = rem-4, i0+4
		}
		if rem > 0 {
			smallTile(k, &a[(m-1)*si], sp, -si, bp, sb, &c[(m-1)*ldc+cj], -ldc, rem, mask, set)
		}
	}
}

// add returns p advanced by n values.
func add(p *float32, n int) *float32 { return (*float32)(unsafe.Add(unsafe.Pointer(p), 4*n)) }
