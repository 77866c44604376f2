// Package alltoall implements expert-parallel dispatch and combine for
// DeepSeekMoE layers, with the node-limited two-hop routing of DeepSeek-V3
// (DeepSeek-AI, "DeepSeek-V3 Technical Report", arXiv 2412.19437, §3.2.2,
// "Efficient Implementation of Cross-Node All-to-All Communication"; the
// routing it serves is eqs. 12-16 of §2.1.2), over an in-process transport
// (one goroutine per rank) and, with the build tag mpi, over MPI.
//
// # Layout
//
// E routed experts live on R ranks in contiguous blocks (rank r holds
// experts [r·E/R, (r+1)·E/R)); the ranks form nodes of RanksPerNode
// consecutive ranks. A token t with chosen experts S_t (|S_t| = K) has the
// destination ranks D_t = {owner(e) : e ∈ S_t} and nodes N_t = {node(r) :
// r ∈ D_t}. Layout.Route counts, for a batch, the pairs per expert, |{t :
// r ∈ D_t}| per rank, |{t : n ∈ N_t}| per node, and the token × rank
// membership table.
//
// # Dispatch and combine
//
// Dispatch sends x_t once to every rank of D_t (not once per expert), with
// metadata: the ids of the experts of S_t that the receiver holds (-1 for
// the other slots) and the K gate weights g_t. Each rank receives its rows
// grouped by source rank, each source's rows in token order, and counts the
// (row, slot) pairs of each of its experts. Combine runs the path backwards
// and returns, for every token, the sum over its destination ranks of the
// row each returned:
//
//	out_t = Σ_{r ∈ D_t} y_r(t),   y_r(t) = Σ_{e ∈ S_t held by r} g_{e,t} FFN_e(x_t)
//
// The weighting is the expert side's: Combine adds rows, and a rank that
// applies the gate weights to its experts' outputs before returning them
// makes out_t the routed term Σ_i g_{i,t} FFN_i(u_t) of eq. 12. With
// identity experts and no weighting, out_t = |D_t| · x_t.
//
// # Flat and node-limited two-hop routes
//
// Route Flat sends x_t straight to each rank of D_t: a token crosses the
// inter-node link once per destination rank on another node. Route TwoHop
// is DeepSeek-V3's: the source (node m, local index l) sends x_t once to
// each node n ∈ N_t, to the rank with the same local index l (hop 1, the
// only inter-node hop; IB in the report), which forwards it to the ranks
// of D_t on node n (hop 2, intra-node; NVLink in the report). A token
// therefore crosses |N_t \ {m}| inter-node links, at most M = topk_group
// when the router limits each token to M nodes (router.Config.TopKGroups
// with n_group = Nodes()). Combine reverses both hops, summing on the
// forwarder over its node's ranks before crossing back, so the return
// path also crosses once per (token, node).
//
// Both routes deliver the same rows in the same order (source rank, then
// token) and sum per node first (from zero, ranks in order) and then over
// nodes (from zero, nodes in order), so their results agree bit for bit.
// Traffic counts, per rank, the bytes sent inter-node and intra-node by
// dispatch and combine.
//
// # Payloads
//
// Rows travel as float32 or, with Payload FP8, as E4M3 codes with one
// float32 scale per 1x128 tile (fp8.QuantizeTiles, report §3.3.2): the
// source quantises each token once, forwarders relay the codes, the
// receiver dequantises (code × tile scale). The combine path is float32.
// This package imports fp8 (a leaf package over dsv3) for that.
//
// # The moe seam
//
// Dispatcher.Dispatch has the method set of moe.Dispatcher, which this
// package satisfies without importing moe: set moe.MoE.Dispatcher to a
// *Dispatcher, build each rank's layer with Options.LocalExperts =
// Layout.Holds for that rank, and the layer runs expert-parallel. The
// layer needs each (token, expert) output separately (it weighs them and
// takes the gate gradient from them), so this path returns one row per
// pair; every rank runs each of its experts once over the rows from all
// ranks. Gradients of replicated parameters (router, shared experts) are
// summed over the ranks with AllReduceFloat32.
//
// # Transports
//
// Comm is the transport: all-to-all-v on byte buffers, tagged point-to-
// point Exchange (posted all at once, like MPI_Irecv/MPI_Isend and
// MPI_Waitall), all-reduce and Split into sub-communicators (two-hop
// uses a per-node communicator and a same-local-index communicator).
// World runs R ranks as goroutines of one process, copying each segment
// once from sender to receiver. With -tags mpi, MPIWorld returns a
// duplicate of MPI_COMM_WORLD, driven through a small cgo shim over Open
// MPI (MPI_Alltoallv, MPI_Isend/MPI_Irecv, MPI_Allreduce, MPI_Comm_split);
// counts beyond the 32-bit int of the MPI C API are split into chunks. Without the tag
// nothing in the package needs cgo or MPI. Rank r of the communicator is
// taken to be local rank r mod RanksPerNode of node r / RanksPerNode;
// launch MPI with ranks placed by slot (mpirun's default) so that it is.
//
// # Failures
//
// Every collective of the package starts with an agreement (an all-reduce)
// so that bad input on one rank (a wrong shape, an expert id out of
// range, a k or width that differs between ranks) or an expert that
// returns an error makes every rank return an error, the failing rank its
// own and the others one naming it, rather than leaving them waiting. In
// process, a rank that returns an error or panics under World.Run, an
// explicit World.Abort, or an operation that waits longer than
// WorldOptions.Timeout aborts the whole world: every pending and later
// operation returns an error. Under MPI, errors are returned (the shim sets
// MPI_ERRORS_RETURN) and name the rank and the MPI operation; a process
// that dies is MPI's to handle (mpirun ends the job).
package alltoall
