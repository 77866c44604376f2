package deepseekv3

import (
	"fmt"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/mla"
	"github.com/dsv3go/dsv3/moe"
)

// Layer is one decoder layer: pre-RMSNorm residual blocks around MLA and a
// feed-forward network (a dense SwiGLU or a DeepSeekMoE layer):
//
//	u = x + MLA(input_layernorm(x))
//	y = u + FFN(post_attention_layernorm(u))
//
// It implements dsv3.Block, so it can serve as an MTP module's block and as
// a pipeline stage. Its parameter names are relative to "model.layers.N.".
type Layer struct {
	InputNorm *dsv3.RMSNorm // input_layernorm
	Attn      *mla.MLA      // self_attn
	PostNorm  *dsv3.RMSNorm // post_attention_layernorm
	Dense     *moe.SwiGLU   // mlp, for the first first_k_dense_replace layers
	MoE       *moe.MoE      // mlp, for the others

	// round, in bf16 precision, rounds the residual stream to bfloat16
	// after each add, as a bfloat16 model holds it.
	round bool
}

type layerRecord struct {
	in, post, ffn dsv3.Record
	attn          dsv3.Record
}

func (l *Layer) ffn(x dsv3.Matrix, train bool) (dsv3.Matrix, dsv3.Record, error) {
	if l.MoE != nil {
		return l.MoE.Apply(x, train)
	}
	return l.Dense.Apply(x, train)
}

// Apply runs the layer over s.Count sequences of s.Len tokens (training or
// a cache-free prefill).
func (l *Layer) Apply(x dsv3.Matrix, s dsv3.Seq, train bool) (dsv3.Matrix, dsv3.Record, error) {
	a, ra := l.InputNorm.Forward(x, train)
	o, ro, err := l.Attn.Forward(a, s, train)
	if err != nil {
		return dsv3.Matrix{}, nil, err
	}
	return l.finish(x, o, ra, ro, train)
}

// finish adds the attention output to the residual and runs the
// feed-forward half.
func (l *Layer) finish(x, o dsv3.Matrix, ra, ro dsv3.Record, train bool) (dsv3.Matrix, dsv3.Record, error) {
	addInto(o, x)
	l.maybeRound(o)
	u := o
	b, rb := l.PostNorm.Forward(u, train)
	f, rf, err := l.ffn(b, train)
	if err != nil {
		return dsv3.Matrix{}, nil, err
	}
	addInto(f, u)
	l.maybeRound(f)
	if !train {
		return f, nil, nil
	}
	return f, &layerRecord{in: ra, attn: ro, post: rb, ffn: rf}, nil
}

func (l *Layer) maybeRound(m dsv3.Matrix) {
	if l.round {
		roundBF16(m)
	}
}

// Infer runs the layer for new tokens of cached sequences (see
// mla.MLA.InferSpans).
func (l *Layer) Infer(x dsv3.Matrix, spans []mla.Span, c *mla.Cache, path mla.Path) (dsv3.Matrix, error) {
	a, _ := l.InputNorm.Forward(x, false)
	o, err := l.Attn.InferSpans(a, spans, c, path)
	if err != nil {
		return dsv3.Matrix{}, err
	}
	y, _, err := l.finish(x, o, nil, nil, false)
	return y, err
}

// ApplyBackward back-propagates dL/dy through the layer, accumulating every
// parameter gradient, and returns dL/dx.
func (l *Layer) ApplyBackward(rec dsv3.Record, dy dsv3.Matrix) (dsv3.Matrix, error) {
	r, ok := rec.(*layerRecord)
	if !ok {
		return dsv3.Matrix{}, fmt.Errorf("deepseekv3: layer backward needs the record of a training forward")
	}
	var db dsv3.Matrix
	if l.MoE != nil {
		var err error
		if db, err = l.MoE.ApplyBackward(r.ffn, dy); err != nil {
			return dsv3.Matrix{}, err
		}
	} else {
		db = l.Dense.Backward(r.ffn, dy)
	}
	du := l.PostNorm.Backward(r.post, db)
	addInto(du, dy)
	da, err := l.Attn.Backward(r.attn, du)
	if err != nil {
		return dsv3.Matrix{}, err
	}
	dx := l.InputNorm.Backward(r.in, da)
	addInto(dx, du)
	return dx, nil
}

// Forward implements dsv3.Block; it panics on the errors Apply returns
// (callers that want them use Apply).
func (l *Layer) Forward(x dsv3.Matrix, s dsv3.Seq, train bool) (dsv3.Matrix, dsv3.Record) {
	y, r, err := l.Apply(x, s, train)
	if err != nil {
		panic(err)
	}
	return y, r
}

// Backward implements dsv3.Block; it panics on the errors ApplyBackward
// returns.
func (l *Layer) Backward(rec dsv3.Record, dy dsv3.Matrix) dsv3.Matrix {
	dx, err := l.ApplyBackward(rec, dy)
	if err != nil {
		panic(err)
	}
	return dx
}

// Params lists the layer's parameters relative to "model.layers.N.".
func (l *Layer) Params() []dsv3.Param {
	var ps []dsv3.Param
	ps = append(ps, dsv3.PrefixParams("input_layernorm.", l.InputNorm.Params())...)
	ps = append(ps, dsv3.PrefixParams("self_attn.", l.Attn.Params())...)
	ps = append(ps, dsv3.PrefixParams("post_attention_layernorm.", l.PostNorm.Params())...)
	if l.MoE != nil {
		ps = append(ps, dsv3.PrefixParams("mlp.", l.MoE.Params())...)
	} else {
		ps = append(ps, dsv3.PrefixParams("mlp.", l.Dense.Params())...)
	}
	return ps
}

// addInto adds src to dst element by element.
func addInto(dst, src dsv3.Matrix) {
	for i := 0; i < dst.Rows; i++ {
		d, s := dst.Row(i), src.Row(i)
		for j := range d {
			d[j] += s[j]
		}
	}
}

// roundBF16 rounds every element of m to bfloat16 precision.
func roundBF16(m dsv3.Matrix) {
	for i := 0; i < m.Rows; i++ {
		row := m.Row(i)
		for j, v := range row {
			row[j] = dsv3.RoundBF16(v)
		}
	}
}
