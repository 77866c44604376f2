package dsv3

import (
	"fmt"
	"math"
)

// RMSNorm is y = x / sqrt(mean(x²) + Eps) ⊙ w over the last dimension, the
// normalisation of every DeepSeek-V3 block (input_layernorm,
// q_a_layernorm, kv_a_layernorm, enorm, hnorm, ...). Eps is config.json's
// rms_norm_eps. Its parameter is named "weight".
type RMSNorm struct {
	Weight Matrix // 1×dim
	Grad   Matrix // 1×dim, empty for inference
	Eps    float32
}

// NewRMSNorm returns an RMSNorm of width dim with weight 1.
func NewRMSNorm(dim int, eps float32, train bool) *RMSNorm {
	n := &RMSNorm{Weight: NewMatrix(1, dim), Eps: eps}
	for i := range n.Weight.Data {
		n.Weight.Data[i] = 1
	}
	if train {
		n.Grad = NewMatrix(1, dim)
	}
	return n
}

type rmsRecord struct {
	x   Matrix
	inv []float32
}

// Forward normalises every row of x.
func (n *RMSNorm) Forward(x Matrix, train bool) (Matrix, Record) {
	if x.Cols != n.Weight.Cols {
		panic(fmt.Sprintf("dsv3: RMSNorm of width %d applied to %d features", n.Weight.Cols, x.Cols))
	}
	y := NewMatrix(x.Rows, x.Cols)
	var inv []float32
	if train {
		inv = make([]float32, x.Rows)
	}
	w := n.Weight.Row(0)
	for i := 0; i < x.Rows; i++ {
		xi, yi := x.Row(i), y.Row(i)
		r := rmsInv(xi, n.Eps)
		for j, v := range xi {
			yi[j] = v * r * w[j]
		}
		if train {
			inv[i] = r
		}
	}
	if !train {
		return y, nil
	}
	return y, &rmsRecord{x: x, inv: inv}
}

// rmsInv returns 1/sqrt(mean(x²)+eps), summing in float64.
func rmsInv(x []float32, eps float32) float32 {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	return float32(1 / math.Sqrt(ss/float64(len(x))+float64(eps)))
}

// Backward returns dL/dx and adds dL/dweight to Grad.
func (n *RMSNorm) Backward(rec Record, dy Matrix) Matrix {
	r := rec.(*rmsRecord)
	dx := NewMatrix(dy.Rows, dy.Cols)
	w := n.Weight.Row(0)
	var g []float32
	if !n.Grad.Empty() {
		g = n.Grad.Row(0)
	}
	d := float64(dy.Cols)
	for i := 0; i < dy.Rows; i++ {
		xi, dyi, dxi := r.x.Row(i), dy.Row(i), dx.Row(i)
		inv := r.inv[i]
		var dot float64 // Σ dy·w·xhat
		for j, v := range xi {
			xh := v * inv
			dot += float64(dyi[j] * w[j] * xh)
			if g != nil {
				g[j] += dyi[j] * xh
			}
		}
		m := float32(dot / d)
		for j, v := range xi {
			dxi[j] = inv * (dyi[j]*w[j] - v*inv*m)
		}
	}
	return dx
}

// Params returns the weight as "weight".
func (n *RMSNorm) Params() []Param {
	return []Param{{Name: "weight", Value: n.Weight, Grad: n.Grad}}
}
