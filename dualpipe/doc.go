// Package dualpipe implements DeepSeek-V3's DualPipe pipeline-parallel
// schedule (DeepSeek-AI, "DeepSeek-V3 Technical Report", arXiv 2412.19437,
// §3.2.1, Figure 5, Table 2), its V-shaped form DualPipeV, and the 1F1B and
// zero-bubble ZB1P (ZB-H1) baselines: schedules as data, a validator, a
// simulator, timeline pictures and an executor that runs any model split
// into stages.
//
// # Schedules
//
// A Schedule lists, for each of P ranks, its operations in order: F, the
// forward of one micro-batch on one stage; B, its backward, either full or
// input-gradient only with the weight gradient deferred to a later W (the
// zero-bubble split: the input gradient is on the critical path, the
// weight gradient is not); and F&B, a forward of one micro-batch overlapped
// with the full backward of another on the rank's other chunk, so that the
// all-to-all and pipeline communication of each hides behind the
// computation of the other. Every op names its direction, micro-batch and
// stage (Task).
//
// DualPipe (NewDualPipe; P even, N even, N >= 2P) feeds micro-batches from
// both ends: rank r holds stage r for the N/2 micro-batches that enter at
// rank 0 (direction 0) and stage P-1-r for the N/2 that enter at rank P-1
// (direction 1), so the model's parameters are stored twice. Its order is
// that of the reference implementation (deepseek-ai/DualPipe
// dualpipe/dualpipe.py); for P=4, N=8 it equals the reference trace in
// ../shared/fixtures/dualpipe operation for operation, and other sizes
// follow the same eight steps. DualPipeV (NewDualPipeV) folds the pipeline
// into a V: P ranks hold 2P stages, rank r stages r and 2P-1-r, one copy of
// the parameters. NewOneFOneB and NewZB1P build the baselines. Validate
// checks any schedule (each F before its B before its W, every send
// matched by one receive, no deadlock), and MarshalJSON / ParseJSON read
// and write the fixture's JSON form.
//
// # Table 2
//
// With F, B, W and F&B the times of a forward chunk, a full backward
// chunk, a weight-gradient chunk and an overlapped pair, and PP the number
// of pipeline stages:
//
//	Method     Bubble                Parameter  Activation  #Devices
//	1F1B       (PP-1)(F+B)           1×         PP          PP
//	ZB1P       (PP-1)(F+B-2W)        1×         PP          PP
//	DualPipe   (PP/2-1)(F&B+B-3W)    2×         PP+1        PP
//	DualPipeV  (PP/2-1)(F&B+B-3W)    2×         PP+1        PP/2
//
// Simulate times a schedule with given Costs (every op as soon as its rank
// is free and its inputs have arrived, plus a transfer time between ranks)
// and reports per-rank timelines, the makespan, each rank's bubble (idle
// time), its peak in-flight activations in micro-batches of one stage, and
// the parameter copies; Compare builds the table for given PP, N and
// costs and Sweep scans sizes. With unit costs (F = W = 1, B = 2, F&B = 3)
// every rank's simulated bubble equals the formula exactly for all four
// methods (the tests check PP = 2, 4, 8, 16), and DualPipe's peak is PP+1
// on every rank. For other costs the 1F1B formula stays exact; the ZB1P
// formula is exact when W <= F <= B-W; the DualPipe formula is then an
// upper bound on every rank's bubble, not always reached. Transfer time
// adds to all of them.
//
// # Executor
//
// Executor runs a Schedule on one goroutine per rank. The model is split
// into Stages (forward, input-gradient backward with an optional deferred
// weight gradient, weight-gradient backward, parameters; Layers makes one
// from dsv3 layers and splits each dsv3.Linear's backward). A stage that
// also implements Overlapper runs F&B pairs itself, for example with the
// forward's all-to-all overlapping the backward's computation. Ranks
// exchange activations and gradients over point-to-point links tagged by
// kind, direction, micro-batch and stage, not by posting order; the last
// stage of each direction computes the loss; after a step the two copies
// of each DualPipe stage hold the sum of both copies' gradients. A failing
// stage or a cancelled context ends the step with an error on every rank;
// a schedule is validated before it runs, so it cannot deadlock.
package dualpipe
