package peer

// EntryKind says what an Entry's Data holds.
type EntryKind uint8

const (
	// KindCommands entries carry an opaque batch of state-machine commands.
	KindCommands EntryKind = iota
	// KindNoop entries fill a slot a new leader found empty; they apply nothing.
	KindNoop
	// KindConfig entries carry a new configuration (opaque to the core). The slot
	// of a chosen KindConfig entry is the last slot of its configuration: no slot
	// after it is ever chosen by these members (see Replica.ProposeConfig), and
	// the caller starts a new Replica for the next configuration from the slot
	// after it.
	KindConfig
)

// Entry is the value of one log slot together with the ballot at which the
// replica accepted it.
type Entry struct {
	Slot   uint64
	Ballot Ballot
	Kind   EntryKind
	Data   []byte
}
