package benchenv

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSizes(t *testing.T) {
	const name = "PIER_BENCH_TEST_SIZES"
	for _, tc := range []struct {
		env, def string
		want     []int
		err      string
	}{
		{env: "", def: "1000", want: []int{1000}},
		{env: "1000,5000,20000", def: "1000", want: []int{1000, 5000, 20000}},
		{env: " 5, 7 ", def: "1000", want: []int{5, 7}},
		{env: "20000", def: "5,6", want: []int{20000}},
		{env: "", def: "5,6", want: []int{5, 6}},
		{env: "0", def: "1000", err: `PIER_BENCH_TEST_SIZES: "0" is not a count`},
		{env: "-3", def: "1000", err: `PIER_BENCH_TEST_SIZES: "-3" is not a count`},
		{env: "1k", def: "1000", err: `PIER_BENCH_TEST_SIZES: "1k" is not a count`},
		{env: "1,,2", def: "1000", err: `PIER_BENCH_TEST_SIZES: "" is not a count`},
	} {
		t.Run(tc.env+"/"+tc.def, func(t *testing.T) {
			t.Setenv(name, tc.env)
			got, err := Sizes(name, tc.def)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Sizes (-want +got):\n%s", diff)
			}
			if msg := errString(err); msg != tc.err {
				t.Errorf("error %q, want %q", msg, tc.err)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
