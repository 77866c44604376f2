// Package dualpipe implements DeepSeek-V3's DualPipe pipeline-parallel
// schedule (DeepSeek-AI, "DeepSeek-V3 Technical Report", arXiv 2412.19437,
// §3.2.1, Figures 4 and 5, Table 2), its V-shaped form DualPipeV, and the
// 1F1B and zero-bubble ZB1P (ZB-H1) baselines: schedules as data, a
// validator, a simulator, timeline pictures and an executor that runs any
// model split into stages.
//
// # Schedules
//
// A [Schedule] lists, for each of P ranks, its operations in order
// ([Op]): F, the forward of one micro-batch on one stage; B, its backward,
// either full or input-gradient only with the weight gradient deferred to
// a later W (the zero-bubble split: the input gradient is on the critical
// path, the weight gradient is not); and F&B, the forward of one
// micro-batch overlapped with the full backward of another on the rank's
// other chunk, so that the all-to-all and pipeline communication of each
// hides behind the computation of the other (report Figure 4). Every op
// names its direction, micro-batch and stage ([Task]).
//
// DualPipe ([NewDualPipe]; P even, N even, N >= 2P) feeds micro-batches
// from both ends: rank r holds stage r for the N/2 micro-batches that enter
// at rank 0 (direction 0) and stage P-1-r for the N/2 that enter at rank
// P-1 (direction 1), so the model's parameters are stored twice. Its order
// is that of the reference implementation (deepseek-ai/DualPipe,
// dualpipe/dualpipe.py, eight steps: warm-up forwards, forward pairs,
// zero-bubble backwards, the main overlapped F&B phase, and the drain; see
// NewDualPipe); for P=4, N=8 it equals the reference trace in
// ../shared/fixtures/dualpipe operation for operation, and other sizes
// follow the same rules. DualPipeV ([NewDualPipeV]) folds the pipeline into
// a V: P ranks hold 2P stages, rank r stages r and 2P-1-r, one copy of the
// parameters. [NewOneFOneB] and [NewZB1P] build the baselines, [Generate]
// any of the four. [Validate] checks any schedule: each F before its B
// before its W, every activation or gradient sent matched by one receive,
// no deadlock. [Schedule.MarshalJSON] and [ParseJSON] write and read the
// fixture's JSON form.
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
// [Simulate] times a schedule with given [Costs] (every op as soon as its
// rank is free and its inputs have arrived, plus a transfer time between
// ranks) and returns a [Timeline]: per-rank start and end times, the
// makespan, each rank's bubble (makespan minus busy time), its peak
// in-flight activations in micro-batches of one stage, and, through the
// schedule, the parameter copies. [Compare] builds the table for given PP,
// N and costs ([FormulaBubble] next to the simulation) and [Sweep] scans
// sizes. With unit costs (F = W = 1, B = 2, F&B = 3) every rank's
// simulated bubble equals the formula exactly for all four methods (the
// tests check PP = 2, 4, 8 and 16), and DualPipe's and DualPipeV's peak
// activations are PP+1 on every rank. For other costs without transfer
// time the 1F1B formula stays exact; the ZB1P formula is exact when W <= F
// <= B-W, and in that regime (with max(F, B) <= F&B <= F+B) the DualPipe
// formula is an upper bound on every rank's bubble, not always reached.
// Outside that regime the ZB1P and DualPipe formulas are neither bounds
// nor exact, and transfer time adds to every bubble.
//
// # The picture
//
// Timeline.WriteSVG and Timeline.WritePNG draw a simulated schedule in the
// style of Figure 5 of the report: ranks as rows, time to the right, cells
// coloured by kind (forward, full backward, input-only backward, weight
// gradient) and direction, micro-batch numbers in the cells, overlapped
// pairs in a thick border. The package README shows
// dualpipe_p8_n20.svg, DualPipe for 8 ranks and 20 micro-batches (the size
// of Figure 5), and dualpipev_p4_n10.svg, DualPipeV for 4 ranks and 10
// micro-batches; tests keep both in sync with the code. In text, F is a
// forward, B a full backward, I an input-only backward, W a weight
// gradient, upper case for direction 0 and lower case for direction 1, an
// overlapped pair F&b, two columns per time unit, '.' idle.
//
// The timeline of NewDualPipe(8, 20) with UnitCosts, as Timeline.WriteText draws it:
//
//	time   |0                   10                  20                  30                  40                  50                  60
//	rank 0 |F0F1F2F3F4F5F6f0i0w0f1i1w1f2i2w2f3F7&b3-......f4&B0-F8&b4-f5&B1-F9&b5-f6&B2-b6--..f7&B3-b7--..f8&B4-b8--..f9&B5-b9--I6W6I7W7I8W8I9W9
//	rank 1 |..F0F1F2F3F4f0F5f1i0w0f2i1w1f3F6&b2-....f4&B0-F7&b3-f5&B1-F8&b4-f6&B2-F9&b5-f7&B3-b6--..f8&B4-b7--..f9&B5-b8--B6--..i9I7w9I8W7I9W8W9
//	rank 2 |....F0F1F2f0F3f1F4f2i0w0f3F5&b1-..f4&B0-F6&b2-f5&B1-F7&b3-f6&B2-F8&b4-f7&B3-F9&b5-f8&B4-b6--..f9&B5-b7--B6--..b8--I7..i9I8W7I9w9W8W9
//	rank 3 |......F0f0F1f1F2f2F3f3F4b0--f4&B0-F5&b1-f5&B1-F6&b2-f6&B2-F7&b3-f7&B3-F8&b4-f8&B4-F9&b5-f9&B5-b6--B6--..b7--B7--..i8I8..i9I9w8W8w9W9
//	rank 4 |......f0F0f1F1f2F2f3F3f4B0--F4&b0-f5&B1-F5&b1-f6&B2-F6&b2-f7&B3-F7&b3-f8&B4-F8&b4-f9&B5-F9&b5-B6--b6--..B7--b7--..I8i8..I9i9W8w8W9w9
//	rank 5 |....f0f1f2F0f3F1f4F2I0W0F3f5&B1-..F4&b0-f6&B2-F5&b1-f7&B3-F6&b2-f8&B4-F7&b3-f9&B5-F8&b4-B6--..F9&b5-B7--b6--..B8--i7..I9i8w7i9W9w8w9
//	rank 6 |..f0f1f2f3f4F0f5F1I0W0F2I1W1F3f6&B2-....F4&b0-f7&B3-F5&b1-f8&B4-F6&b2-f9&B5-F7&b3-B6--..F8&b4-B7--..F9&b5-B8--b6--..I9i7W9i8w7i9w8w9
//	rank 7 |f0f1f2f3f4f5f6F0I0W0F1I1W1F2I2W2F3f7&B3-......F4&b0-f8&B4-F5&b1-f9&B5-F6&b2-B6--..F7&b3-B7--..F8&b4-B8--..F9&b5-B9--i6w6i7w7i8w8i9w9
//
// # Executor
//
// [Executor] runs a Schedule on one goroutine per rank. The model is split
// into [Stage] values (forward; backward returning the input gradient,
// with the weight gradient optionally deferred; weight-gradient backward;
// parameters). [Layers] makes a stage of dsv3 layers and splits every
// float32 dsv3.Linear's backward into dX = dY·W now and dW += dYᵀ·X in the
// W op; [Blocks] makes one of dsv3.Blocks (whole decoder layers, full
// backward). A stage that also implements [Overlapper] runs F&B pairs
// itself, which is where the report's Figure 4 overlap (attention and MLP
// of one chunk during the dispatch and combine of the other) belongs.
// Ranks exchange activations and gradients over point-to-point links
// tagged by kind, direction, micro-batch and stage, not by posting order,
// so sends never block; the last stage of each direction computes the loss
// ([LossFunc]); after a step the two copies of each DualPipe stage hold the
// sum of both copies' gradients. A stage's error or panic, a loss error or
// a cancelled context ends the step with an error on every rank, and the
// schedule is validated before it runs, so the ranks cannot deadlock. The losses
// are bit-identical to running the micro-batches one by one through the
// whole model, and the gradients equal that run's to float32 rounding of
// the changed summation order (the tests check 1e-6 relative).
package dualpipe
