// Package dsv3 is a Go library of DeepSeek-V3's building blocks
// (DeepSeek-AI, "DeepSeek-V3 Technical Report", arXiv 2412.19437), and this
// root package holds the small vocabulary they share.
//
// # The map
//
// Each building block is its own package, usable alone:
//
//	fp8       FP8 formats (E4M3, E5M2), 1x128 activation tiles and 128x128
//	          weight blocks, the block-scaled GEMM with FP32 accumulation,
//	          FP8 training of linear layers                     report §3.3
//	yarn      rotary position embedding with YaRN context extension and
//	          its attention-scale correction                    report §2.1.1, §4.3
//	router    the auxiliary-loss-free router: sigmoid affinities, a
//	          selection-only bias, group-limited top-k, balance statistics
//	                                                            report §2.1.2, eqs. 12-20
//	moe       DeepSeekMoE: shared plus fine-grained routed SwiGLU experts
//	                                                            report §2.1.2, eq. 12
//	mla       Multi-head Latent Attention, its compressed KV cache and the
//	          weight-absorbed decode path                       report §2.1.1, eqs. 1-11
//	mtp       multi-token prediction modules, their loss, speculative
//	          decoding                                          report §2.2, eqs. 21-25
//	dualpipe  DualPipe and DualPipeV pipeline schedules, a simulator and an
//	          executor                                          report §3.2.1
//	alltoall  expert-parallel dispatch and combine with node-limited
//	          two-hop routing, in-process and over MPI          report §3.2.2
//	examples  the full model from the parts (loading the Hugging Face
//	          checkpoint), a generator and a trainer
//
// # How the parts compose
//
// A DeepSeek-V3 decoder layer is u = h + MLA(RMSNorm(h)), then
// h_next = u + FFN(RMSNorm(u)), where FFN is a dense SwiGLU for the first
// first_k_dense_replace layers and a DeepSeekMoE layer after. mla takes its
// rotary tables and softmax scale from yarn; moe takes its expert choice from
// router; both multiply through a Weight, which may be float32, BF16 or an
// fp8 block-quantised weight. mtp wraps any Block with the shared embedding
// and output head. examples/deepseekv3 maps config.json onto each block's own
// Config and binds checkpoint tensors through Params().
//
// # The vocabulary
//
// Matrix is a row-major float32 matrix view (activations [tokens, features],
// weights [out, in]). Param is a named parameter with its gradient, named as
// in the Hugging Face checkpoint, so that loaders and optimizers walk any
// layer alike. Weight is anything that computes y = x·Wᵀ. Layer and Block
// are the forward/backward contract: Forward returns its output and an opaque
// Record, Backward(record, dy) returns dx and accumulates parameter
// gradients; layers keep no per-call state, so several micro-batches can be
// in flight. Linear and RMSNorm are the two layers every block uses.
//
// BF16 and F16 conversions round to nearest, ties to even.
package dsv3
