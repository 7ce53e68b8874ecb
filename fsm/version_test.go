package fsm

import "testing"

// TestCommandSetCoversEveryType: every command type belongs to a command
// set this build applies, so the leader's version gate can place it, and
// a type that is not a command belongs to none.
func TestCommandSetCoversEveryType(t *testing.T) {
	for i := range len(commandTable) {
		ct := CommandType(i)
		_, known := ct.info()
		got := ct.Introduced()
		switch {
		case !known && got != 0:
			t.Errorf("%v is not a command but Introduced says set %d", ct, got)
		case known && (got < 1 || got > CommandSetVersion):
			t.Errorf("%v introduced in set %d, want 1..%d", ct, got, CommandSetVersion)
		}
	}
	if got := CommandType(255).Introduced(); got != 0 {
		t.Errorf("CommandType(255).Introduced() = %d, want 0", got)
	}
}
