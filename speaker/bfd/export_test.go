package bfd

// Mute makes a running session stop (on) or resume sending, as a crashed or
// cut-off peer would look to the other side. Tests only.
func Mute(s *Session, on bool) { s.mute.Store(on) }
