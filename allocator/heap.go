package allocator

// addrHeap is a min-heap of addresses with an index, so a given address can
// be removed in O(log n) when a Service asks for it by name.
type addrHeap struct {
	items []ip128
	index map[ip128]int
}

func (h *addrHeap) min() (ip128, bool) {
	if len(h.items) == 0 {
		return ip128{}, false
	}
	return h.items[0], true
}

func (h *addrHeap) contains(x ip128) bool {
	_, ok := h.index[x]
	return ok
}

func (h *addrHeap) push(x ip128) {
	if h.index == nil {
		h.index = make(map[ip128]int)
	}
	if _, ok := h.index[x]; ok {
		return
	}
	h.items = append(h.items, x)
	h.index[x] = len(h.items) - 1
	h.up(len(h.items) - 1)
}

// remove deletes x if present.
func (h *addrHeap) remove(x ip128) {
	i, ok := h.index[x]
	if !ok {
		return
	}
	last := len(h.items) - 1
	h.swap(i, last)
	h.items = h.items[:last]
	delete(h.index, x)
	if i < last {
		h.down(i)
		h.up(i)
	}
	if last == 0 {
		h.items, h.index = nil, nil // drop memory once the heap drains
	}
}

func (h *addrHeap) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.index[h.items[i]] = i
	h.index[h.items[j]] = j
}

func (h *addrHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.items[i].less(h.items[p]) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *addrHeap) down(i int) {
	n := len(h.items)
	for {
		m := i
		if l := 2*i + 1; l < n && h.items[l].less(h.items[m]) {
			m = l
		}
		if r := 2*i + 2; r < n && h.items[r].less(h.items[m]) {
			m = r
		}
		if m == i {
			return
		}
		h.swap(i, m)
		i = m
	}
}
