package allocator

import "errors"

// Sentinel errors. Methods wrap them with context; test with errors.Is.
var (
	// ErrInvalidPool: a pool definition is malformed or overlaps another pool.
	ErrInvalidPool = errors.New("invalid pool")
	// ErrInvalidRequest: a request or restore claim is malformed.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrUnknownPool: the request names a pool that does not exist.
	ErrUnknownPool = errors.New("unknown pool")
	// ErrNoEligiblePool: no pool may serve this Service (namespace, labels,
	// auto-assign off).
	ErrNoEligiblePool = errors.New("no eligible pool")
	// ErrFamilyUnavailable: no eligible pool has the IP family asked for.
	ErrFamilyUnavailable = errors.New("IP family unavailable")
	// ErrPoolExhausted: the eligible pools of that family are full.
	ErrPoolExhausted = errors.New("pool exhausted")
	// ErrAddressInUse: the address is held by another Service and one of
	// the two has no sharing key.
	ErrAddressInUse = errors.New("address in use")
	// ErrSharingConflict: the address is held by another Service with a
	// different sharing key or a clashing port.
	ErrSharingConflict = errors.New("sharing conflict")
	// ErrAddressNotInPool: the requested address is not assignable from the
	// requested pool (outside it, or an avoided .0/.255).
	ErrAddressNotInPool = errors.New("address not in pool")
	// ErrNotInAnyPool: the requested address is outside every pool.
	ErrNotInAnyPool = errors.New("address not in any pool")
)
