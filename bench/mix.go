package bench

import (
	"fmt"
	"strconv"
	"strings"
)

// Mix is the share of each operation kind in a generated load, as integer weights:
// put=50,get=50 issues puts and gets with equal probability.
type Mix struct {
	Weights [numOpKinds]int
}

// ParseMix reads "put=50,get=50,delete=0": comma-separated name=weight pairs, names
// case-insensitive, weights non-negative integers, a name at most once. Kinds not
// named weigh 0; at least one weight must be positive.
func ParseMix(s string) (Mix, error) {
	var m Mix
	var seen [numOpKinds]bool
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, weight, ok := strings.Cut(part, "=")
		if !ok {
			return Mix{}, fmt.Errorf("mix %q: %q is not name=weight", s, part)
		}
		kind, ok := parseOpKind(strings.TrimSpace(name))
		if !ok {
			return Mix{}, fmt.Errorf("mix %q: unknown operation %q (want put, get or delete)", s, strings.TrimSpace(name))
		}
		if seen[kind] {
			return Mix{}, fmt.Errorf("mix %q: %s given twice", s, kind)
		}
		seen[kind] = true
		w, err := strconv.Atoi(strings.TrimSpace(weight))
		if err != nil || w < 0 || w > 1_000_000 {
			return Mix{}, fmt.Errorf("mix %q: weight of %s must be a whole number from 0 to 1000000", s, kind)
		}
		m.Weights[kind] = w
	}
	if m.total() == 0 {
		return Mix{}, fmt.Errorf("mix %q: no operation has a positive weight", s)
	}
	return m, nil
}

func (m Mix) total() int {
	t := 0
	for _, w := range m.Weights {
		t += w
	}
	return t
}

// Has reports whether kind has a positive weight.
func (m Mix) Has(kind OpKind) bool { return m.Weights[kind] > 0 }

// pick maps r, uniform in [0, total), to a kind in proportion to the weights.
func (m Mix) pick(r int) OpKind {
	for _, k := range OpKinds {
		if r < m.Weights[k] {
			return k
		}
		r -= m.Weights[k]
	}
	return OpPut // unreachable for r in range
}

// String is the canonical form, e.g. "put=50,get=50", kinds of weight 0 left out.
func (m Mix) String() string {
	var parts []string
	for _, k := range OpKinds {
		if m.Weights[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, m.Weights[k]))
		}
	}
	return strings.Join(parts, ",")
}
