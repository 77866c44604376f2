package moe

import (
	"fmt"

	"github.com/dsv3go/dsv3"
)

// SeqBalanceLoss returns the router's complementary sequence-wise balance
// loss (report eqs. 17-20, factor alpha = aux_loss_alpha) for the tokens of
// a training Forward, split into consecutive sequences of seqLen, and
// registers it so that the ApplyBackward of the same record adds its
// gradient into the router weight and the input (see
// router.Router.SeqBalanceLoss).
func (m *MoE) SeqBalanceLoss(rec dsv3.Record, seqLen int, alpha float32) (float64, error) {
	r, ok := rec.(*record)
	if !ok || r == nil {
		return 0, fmt.Errorf("moe: SeqBalanceLoss needs the record of a training forward, got %T", rec)
	}
	return m.Gate.SeqBalanceLoss(r.gate, seqLen, alpha)
}
