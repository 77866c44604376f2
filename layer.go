package dsv3

// Param is one named weight of a layer with its gradient.
//
// Name is the Hugging Face checkpoint's relative name ("q_a_proj.weight",
// "mlp.gate.e_score_correction_bias", ...), so a loader fills any layer by
// walking Params() with a prefix, and an optimizer updates any layer the same
// way. Vectors (norm weights, biases) are 1×n matrices.
type Param struct {
	Name string
	// Value is the float32 value, shaped as in the checkpoint. It is empty
	// when the layer holds its weight in another format (see Slot).
	Value Matrix
	// Grad has Value's shape; it is empty for parameters without a gradient
	// (the router's selection bias) and for layers built for inference.
	Grad Matrix
	// Slot, for projection weights, points at the Weight the layer
	// multiplies with. A loader may store a quantised weight there (an FP8
	// block weight from the fp8 package, a BF16Weight) instead of filling
	// Value.
	Slot *Weight
}

// Record is what a Forward call keeps for its Backward: opaque to callers,
// nil in inference mode. Layers keep no per-call state in themselves, so
// several micro-batches can be in flight at once.
type Record any

// Layer is a position-wise layer (a Linear, an RMSNorm, a SwiGLU MLP, a MoE).
type Layer interface {
	// Forward maps x [tokens, in] to y [tokens, out]. With train it also
	// returns the record that Backward needs.
	Forward(x Matrix, train bool) (y Matrix, rec Record)
	// Backward takes the record of one Forward and dL/dy, accumulates the
	// parameter gradients and returns dL/dx.
	Backward(rec Record, dy Matrix) (dx Matrix)
	// Params lists the layer's parameters with checkpoint-relative names.
	Params() []Param
}

// Seq says how the rows of an activation matrix form sequences: Count
// sequences of Len consecutive rows each, every one starting at absolute
// position Start. Rows = Count*Len.
type Seq struct {
	Count, Len, Start int
}

// Block is a sequence layer, such as a whole decoder layer (attention plus
// feed-forward): the unit the mtp module wraps and a pipeline stage runs.
type Block interface {
	// Forward maps x [s.Count*s.Len, hidden] to the same shape.
	Forward(x Matrix, s Seq, train bool) (y Matrix, rec Record)
	// Backward takes the record of one Forward and dL/dy, accumulates the
	// parameter gradients and returns dL/dx.
	Backward(rec Record, dy Matrix) (dx Matrix)
	// Params lists the block's parameters with checkpoint-relative names.
	Params() []Param
}

// PrefixParams returns ps with prefix prepended to every name
// ("self_attn." + "q_a_proj.weight").
func PrefixParams(prefix string, ps []Param) []Param {
	for i := range ps {
		ps[i].Name = prefix + ps[i].Name
	}
	return ps
}

// ZeroGrads sets the gradient of every parameter in ps to zero.
func ZeroGrads(ps []Param) {
	for _, p := range ps {
		p.Grad.Zero()
	}
}
