package gemm

import "unsafe"

// goMR and goNR are the register tile of the pure-Go micro-kernel: 4×4 sums
// fit the 16 (amd64) or 32 (arm64) floating-point registers.
const goMR, goNR = 4, 4

// goKernels returns the pure-Go kernel set, the twin of the assembly sets and
// the only one under the purego build tag or on other architectures.
func goKernels() *kernelSet {
	ks := &kernelSet{
		name: "go",
		mr:   goMR, nr: goNR,
		micro: []microKernel{nil, goMicro1, goMicro2, goMicro3, goMicro4},
		kc:    256, nc: 256,
		lanes:    1,
		packRows: packRows,
		packCols: packCols,
		dot4:     goDot4, dot1: goDot1,
		axpy4: goAxpy4, axpy1: goAxpy1,
		small: goSmallKernels(),
	}
	return ks
}

func goMicro1(k int, a, b, c *float32, ldc int, acc int) { goMicroRows(1, k, a, b, c, ldc, acc) }
func goMicro2(k int, a, b, c *float32, ldc int, acc int) { goMicroRows(2, k, a, b, c, ldc, acc) }
func goMicro3(k int, a, b, c *float32, ldc int, acc int) { goMicroRows(3, k, a, b, c, ldc, acc) }

// goMicro4 is the full 4×4 tile with its sums in sixteen locals.
func goMicro4(k int, ap, bp, cp *float32, ldc int, acc int) {
	a := unsafe.Slice(ap, 4*k)
	b := unsafe.Slice(bp, 4*k)
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	var c20, c21, c22, c23, c30, c31, c32, c33 float32
	for p := 0; p < k; p++ {
		av := a[4*p : 4*p+4 : 4*p+4]
		bv := b[4*p : 4*p+4 : 4*p+4]
		b0, b1, b2, b3 := bv[0], bv[1], bv[2], bv[3]
		a0 := av[0]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		a1 := av[1]
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		a2 := av[2]
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		a3 := av[3]
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	c := unsafe.Slice(cp, 3*ldc+4)
	r0 := c[0:4:4]
	r1 := c[ldc : ldc+4 : ldc+4]
	r2 := c[2*ldc : 2*ldc+4 : 2*ldc+4]
	r3 := c[3*ldc : 3*ldc+4 : 3*ldc+4]
	if acc != 0 {
		c00 += r0[0]
		c01 += r0[1]
		c02 += r0[2]
		c03 += r0[3]
		c10 += r1[0]
		c11 += r1[1]
		c12 += r1[2]
		c13 += r1[3]
		c20 += r2[0]
		c21 += r2[1]
		c22 += r2[2]
		c23 += r2[3]
		c30 += r3[0]
		c31 += r3[1]
		c32 += r3[2]
		c33 += r3[3]
	}
	r0[0], r0[1], r0[2], r0[3] = c00, c01, c02, c03
	r1[0], r1[1], r1[2], r1[3] = c10, c11, c12, c13
	r2[0], r2[1], r2[2], r2[3] = c20, c21, c22, c23
	r3[0], r3[1], r3[2], r3[3] = c30, c31, c32, c33
}

// goMicroRows is the edge tile: r < 4 rows of 4 columns.
func goMicroRows(r, k int, ap, bp, cp *float32, ldc int, acc int) {
	a := unsafe.Slice(ap, r*k)
	b := unsafe.Slice(bp, goNR*k)
	var s [goMR][goNR]float32
	for p := 0; p < k; p++ {
		bv := b[goNR*p : goNR*p+goNR : goNR*p+goNR]
		for i, av := range a[r*p : r*p+r] {
			s[i][0] += av * bv[0]
			s[i][1] += av * bv[1]
			s[i][2] += av * bv[2]
			s[i][3] += av * bv[3]
		}
	}
	c := unsafe.Slice(cp, (r-1)*ldc+goNR)
	for i := 0; i < r; i++ {
		row := c[i*ldc : i*ldc+goNR]
		for j := range row {
			if acc != 0 {
				row[j] += s[i][j]
			} else {
				row[j] = s[i][j]
			}
		}
	}
}

// goDotRow returns Σ_{p<k} x[p]·w[p] with four partial sums.
func goDotRow(x, w []float32) float32 {
	w = w[:len(x)]
	var s0, s1, s2, s3 float32
	p := 0
	for ; p+4 <= len(x); p += 4 {
		s0 += x[p] * w[p]
		s1 += x[p+1] * w[p+1]
		s2 += x[p+2] * w[p+2]
		s3 += x[p+3] * w[p+3]
	}
	for ; p < len(x); p++ {
		s0 += x[p] * w[p]
	}
	return (s0 + s1) + (s2 + s3)
}

func goDot1(k int, xp, wp *float32, ldw int, yp *float32) {
	*yp = goDotRow(unsafe.Slice(xp, k), unsafe.Slice(wp, k))
}

func goDot4(k int, xp, wp *float32, ldw int, yp *float32) {
	x := unsafe.Slice(xp, k)
	w := unsafe.Slice(wp, 3*ldw+k)
	y := unsafe.Slice(yp, 4)
	for i := range y {
		y[i] = goDotRow(x, w[i*ldw:i*ldw+k])
	}
}

func goAxpy1(n int, xp, wp *float32, ldw int, yp *float32) {
	x := *xp
	w := unsafe.Slice(wp, n)
	y := unsafe.Slice(yp, n)
	for j, v := range w {
		y[j] += x * v
	}
}

func goAxpy4(n int, xp, wp *float32, ldw int, yp *float32) {
	x := unsafe.Slice(xp, 4)
	x0, x1, x2, x3 := x[0], x[1], x[2], x[3]
	w := unsafe.Slice(wp, 3*ldw+n)
	w0 := w[:n]
	w1 := w[ldw : ldw+n]
	w2 := w[2*ldw : 2*ldw+n]
	w3 := w[3*ldw : 3*ldw+n]
	y := unsafe.Slice(yp, n)
	for j := range y {
		y[j] += x0*w0[j] + x1*w1[j] + x2*w2[j] + x3*w3[j]
	}
}
