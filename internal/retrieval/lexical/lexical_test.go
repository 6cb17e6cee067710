package lexical

import "testing"

func TestFold(t *testing.T) {
	for in, want := range map[string]string{"café": "cafe", "ﬁle": "file", "ＡＰＩ": "API", "plain": "plain"} {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStopWord(t *testing.T) {
	if !StopWord("the") || StopWord("postgres") || StopWord("The") {
		t.Error("StopWord: the is one, postgres is not, and the list is lower case")
	}
}
