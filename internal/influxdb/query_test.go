package influxdb

import (
	"errors"
	"testing"
)

func TestDecodeResponse(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		series int
		err    error
	}{
		{"two statements", `{"results":[{"statement_id":0,"series":[{"name":"vote","tags":{"org":"a"},"columns":["time","n"],"values":[[0,3]]}]},{"statement_id":1}]}`, 1, nil},
		{"empty", `{"results":[{"statement_id":0}]}`, 0, nil},
		{"statement error", `{"results":[{"statement_id":0,"error":"database not found: x"}]}`, 0, ErrQuery},
		{"top error", `{"error":"unauthorized"}`, 0, ErrQuery},
		{"not json", `<html>`, 0, ErrQuery},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeResponse([]byte(tt.body))
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if len(got) != tt.series {
				t.Fatalf("%d series, want %d", len(got), tt.series)
			}
			if tt.series > 0 && num(got[0], "n") != 3 {
				t.Errorf("n = %v, want 3", num(got[0], "n"))
			}
		})
	}
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte(`{"results":[{"statement_id":0,"series":[{"name":"vote","tags":{"org":"a"},"columns":["time","n","sat"],"values":[[0,3,null]]}]}]}`))
	f.Add([]byte(`{"results":[{"error":"x"}]}`))
	f.Add([]byte(`{"results":[{"series":[{"columns":["n"],"values":[["x"],[1e400],[]]}]}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := DecodeResponse(raw)
		if err != nil {
			if !errors.Is(err, ErrQuery) {
				t.Fatalf("error not ErrQuery: %v", err)
			}
			return
		}
		for _, s := range got {
			for _, col := range s.Columns {
				_ = num(s, col) // must never panic on ragged or odd rows
			}
		}
	})
}

// num sums a column over a series' rows; nulls count as zero.
func num(s Series, col string) float64 {
	var sum float64
	for row := range s.Values {
		if v, ok := s.Number(row, col); ok {
			sum += v
		}
	}
	return sum
}
