package audit

import (
	"context"
	"fmt"
	"strconv"
)

// verifyPage is how many records Verify reads at a time.
const verifyPage = 1000

// Report is the outcome of Verify.
type Report struct {
	// Records is how many records were checked: all of them when the
	// chain is intact, else those before the break.
	Records int64
	// HeadSeq and HeadHash are the last intact record (0 and GenesisHash
	// for an empty chain). Keep them outside the database to detect later
	// that records were removed from the end.
	HeadSeq  int64
	HeadHash string
	// Broken is the first broken link, nil when the chain is intact.
	Broken *Break
}

// OK reports whether the chain is intact.
func (r Report) OK() bool { return r.Broken == nil }

// Break is the first place where the chain does not hold.
type Break struct {
	Seq      int64  // the record at which the chain breaks
	Problem  string // what is wrong, for people
	Expected string // what the chain requires there
	Stored   string // what the store holds
}

func (b *Break) String() string {
	return fmt.Sprintf("seq %d: %s (expected %s, stored %s)", b.Seq, b.Problem, b.Expected, b.Stored)
}

// Verify walks the whole chain in Seq order, a page at a time, and checks
// every link: seqs run 1, 2, 3, … without gaps, each record's PrevHash is
// the Hash of the record before it (GenesisHash for the first), and each
// Hash is the hash of the record's contents. It stops at the first broken
// link. An error means the chain could not be read, not that it is broken.
func Verify(ctx context.Context, store ChainReader) (Report, error) {
	rep := Report{HeadHash: GenesisHash}
	for {
		recs, err := store.AuditChain(ctx, rep.HeadSeq, verifyPage)
		if err != nil {
			return rep, fmt.Errorf("verify audit chain after seq %d: %w", rep.HeadSeq, err)
		}
		for _, r := range recs {
			if b := check(r, rep.HeadSeq, rep.HeadHash); b != nil {
				rep.Broken = b
				return rep, nil
			}
			rep.Records++
			rep.HeadSeq, rep.HeadHash = r.Seq, r.Hash
		}
		if len(recs) < verifyPage {
			return rep, nil
		}
	}
}

// check checks r as the record after (prevSeq, prevHash).
func check(r Record, prevSeq int64, prevHash string) *Break {
	if want := prevSeq + 1; r.Seq != want {
		problem := fmt.Sprintf("records %d to %d are missing", want, r.Seq-1)
		if r.Seq < want {
			problem = "seq out of order"
		}
		return &Break{Seq: r.Seq, Problem: problem,
			Expected: "seq " + strconv.FormatInt(want, 10), Stored: "seq " + strconv.FormatInt(r.Seq, 10)}
	}
	if r.PrevHash != prevHash {
		return &Break{Seq: r.Seq, Problem: "prev_hash is not the hash of the record before",
			Expected: prevHash, Stored: r.PrevHash}
	}
	h, err := ComputeHash(r)
	if err != nil {
		return &Break{Seq: r.Seq, Problem: "record cannot be encoded: " + err.Error(), Expected: "a hashable record", Stored: r.Hash}
	}
	if h != r.Hash {
		return &Break{Seq: r.Seq, Problem: "hash does not match the record's contents", Expected: h, Stored: r.Hash}
	}
	return nil
}
