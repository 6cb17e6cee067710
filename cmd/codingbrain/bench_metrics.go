package main

// The figures of `bench retrieval`: recall@k, MRR and nDCG@10 with binary
// relevance, and latency percentiles.

import (
	"math"
	"slices"
	"sort"
	"time"
)

// recallAt is the fraction of the relevant ids found in the first k ranked
// ids. ranked holds no id twice.
func recallAt(ranked []string, relevant map[string]bool, k int) float64 {
	if len(relevant) == 0 {
		return 0
	}
	found := 0
	for _, id := range ranked[:min(k, len(ranked))] {
		if relevant[id] {
			found++
		}
	}
	return float64(found) / float64(len(relevant))
}

// reciprocalRank is 1/rank of the first relevant id (ranks from 1), or 0
// when none was returned.
func reciprocalRank(ranked []string, relevant map[string]bool) float64 {
	for i, id := range ranked {
		if relevant[id] {
			return 1 / float64(i+1)
		}
	}
	return 0
}

// ndcgAt is the normalized discounted cumulative gain of the first k ranked
// ids with binary relevance: DCG = Σ 1/log2(rank+1) over relevant ids at
// ranks 1..k, divided by the DCG of an ideal ranking (every relevant id
// first, at most k of them).
func ndcgAt(ranked []string, relevant map[string]bool, k int) float64 {
	var dcg, ideal float64
	for i, id := range ranked[:min(k, len(ranked))] {
		if relevant[id] {
			dcg += 1 / math.Log2(float64(i+2))
		}
	}
	for i := range min(k, len(relevant)) {
		ideal += 1 / math.Log2(float64(i+2))
	}
	if ideal == 0 {
		return 0
	}
	return dcg / ideal
}

// percentile is the nearest-rank p-th percentile (0 < p ≤ 100) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// queryOutcome is what one query returned and how long it took.
type queryOutcome struct {
	ID       string
	Category string
	Text     string
	Relevant []string
	Ranked   []string // corpus ids, best first, no repeats
	Latency  time.Duration
}

// benchFigures are the averaged figures of a set of queries.
type benchFigures struct {
	Queries int             `json:"queries"`
	Recall  map[int]float64 `json:"recall_at_k"`
	MRR     float64         `json:"mrr"`
	NDCG10  float64         `json:"ndcg_at_10"`
	Latency latencyFigures  `json:"latency_ms"`
}

// latencyFigures are search latencies in milliseconds.
type latencyFigures struct {
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Mean float64 `json:"mean"`
}

// figures averages the per-query metrics of outcomes.
func figures(outcomes []queryOutcome, ks []int) *benchFigures {
	f := &benchFigures{Queries: len(outcomes), Recall: map[int]float64{}}
	if len(outcomes) == 0 {
		return f
	}
	lat := make([]time.Duration, 0, len(outcomes))
	var total time.Duration
	for _, o := range outcomes {
		rel := relevantSet(o.Relevant)
		for _, k := range ks {
			f.Recall[k] += recallAt(o.Ranked, rel, k)
		}
		f.MRR += reciprocalRank(o.Ranked, rel)
		f.NDCG10 += ndcgAt(o.Ranked, rel, 10)
		lat = append(lat, o.Latency)
		total += o.Latency
	}
	n := float64(len(outcomes))
	for _, k := range ks {
		f.Recall[k] /= n
	}
	f.MRR /= n
	f.NDCG10 /= n
	slices.Sort(lat)
	f.Latency = latencyFigures{
		P50: ms(percentile(lat, 50)), P95: ms(percentile(lat, 95)), P99: ms(percentile(lat, 99)),
		Mean: ms(total / time.Duration(len(lat))),
	}
	return f
}

// byCategory groups outcomes by query category ("(none)" for queries
// without one) and computes each group's figures. It returns nil when no
// query has a category.
func byCategory(outcomes []queryOutcome, ks []int) map[string]*benchFigures {
	groups := map[string][]queryOutcome{}
	named := false
	for _, o := range outcomes {
		c := o.Category
		if c == "" {
			c = "(none)"
		} else {
			named = true
		}
		groups[c] = append(groups[c], o)
	}
	if !named {
		return nil
	}
	out := make(map[string]*benchFigures, len(groups))
	for c, os := range groups {
		out[c] = figures(os, ks)
	}
	return out
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func relevantSet(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
