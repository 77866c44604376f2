package dsv3

import (
	"fmt"
	"math"
)

// CrossEntropy returns the mean over rows of -log softmax(logits[i])[targets[i]]
// and, when dlogits is not empty, writes into it the gradient of that mean
// times scale (so a caller can weight a loss, as the MTP loss's λ/D).
// Rows whose target is negative are ignored (and count for nothing in the
// mean); the log-sum-exp runs in float64.
func CrossEntropy(logits Matrix, targets []int32, dlogits Matrix, scale float32) (float64, error) {
	if len(targets) != logits.Rows {
		return 0, fmt.Errorf("dsv3: cross-entropy over %d rows with %d targets", logits.Rows, len(targets))
	}
	n := 0
	for i, t := range targets {
		if int(t) >= logits.Cols {
			return 0, fmt.Errorf("dsv3: target %d of row %d is outside the %d classes", t, i, logits.Cols)
		}
		if t >= 0 {
			n++
		}
	}
	if !dlogits.Empty() {
		if err := dlogits.CheckShape("dsv3: cross-entropy gradient", logits.Rows, logits.Cols); err != nil {
			return 0, err
		}
	}
	if n == 0 {
		dlogits.Zero()
		return 0, nil
	}
	var total float64
	for i, t := range targets {
		row := logits.Row(i)
		if t < 0 {
			if !dlogits.Empty() {
				clear(dlogits.Row(i))
			}
			continue
		}
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v) - mx)
		}
		lse := mx + math.Log(sum)
		total += lse - float64(row[t])
		if !dlogits.Empty() {
			d := dlogits.Row(i)
			f := float64(scale) / float64(n)
			for j, v := range row {
				d[j] = float32(math.Exp(float64(v)-lse) * f)
			}
			d[t] -= float32(f)
		}
	}
	return total / float64(n), nil
}
