package resume

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// The model test's limits: small, so that they are hit often.
const modelMaxBytes, modelMaxStreams, modelMaxAge = 128 << 10, 6, time.Minute

// mStream is the reference model of one stream.
type mStream struct {
	owner                 []byte
	evs                   []Event // event seq is evs[seq-1]
	ended, cut            bool
	active, seen, written time.Time
	tick                  int   // when last touched: each store list is in this order
	bytes                 int64 // its chunks' bytes, counted whole, and its list of batches'
	tail                  int   // the room left in its last chunk
	batches, listCap      int   // its Appends of events, and the room its list has for them
}

// modelTest runs operations on a store and on a model of its documentation.
type modelTest struct {
	t                *testing.T
	rng              *rand.Rand
	m                *MemoryStore
	now              time.Time
	names, hist      []string    // hist: the last 20 operations
	kept             [][2][]byte // the last 100 events read, and their expected bytes
	buf              []byte
	counts           map[string]int
	streams          map[string]*mStream // the model
	gone             []string            // the names forgotten, oldest first
	goneOwner        map[string][]byte   // the owner of the last stream of each
	step, tick, made int                 // made: ended streams forgotten to make room
}

func TestMemoryStoreModel(t *testing.T) {
	h := &modelTest{t: t, rng: rand.New(rand.NewPCG(1, 2)), now: time.Unix(1e9, 0),
		buf: make([]byte, 64<<10), counts: map[string]int{}, streams: map[string]*mStream{}, goneOwner: map[string][]byte{}}
	h.m = NewMemoryStore(MemoryConfig{MaxBytes: modelMaxBytes, MaxStreams: modelMaxStreams,
		MaxAge: modelMaxAge, Now: func() time.Time { return h.now }})
	for range 10 { // as resumetest.Name (an import cycle here), from the seeded source
		h.names = append(h.names, fmt.Sprintf("%016x%016x", h.rng.Uint64(), h.rng.Uint64()))
	}
	for h.step = 1; h.step <= 20_000; h.step++ {
		name := h.names[h.rng.IntN(len(h.names))]
		h.advance(h.streams[name])
		switch r := h.rng.IntN(100); {
		case r < 14:
			h.create(name)
		case r < 54:
			h.append(name)
		case r < 63:
			h.end(name, r >= 60)
		case r < 66:
			if h.streams[name] != nil { // deleted, a name held before is never held: Delete does not look at its age
				h.gone = slices.DeleteFunc(h.gone, func(g string) bool { return g == name })
			}
			delete(h.streams, name)
			h.expect("Delete "+name[:6], h.m.Delete(context.Background(), name), nil)
		case r < 86:
			h.read(name)
		case r < 94:
			h.info(name)
		default:
			h.evict(0, 0)
			n, b := h.m.Len()
			h.expect(fmt.Sprintf("Len: %d streams, %d bytes", n, b), nil, nil)
			h.assert(n == len(h.streams) && b == h.m.bytes, // check: m.bytes is the model's
				"Len: %d streams, %d bytes; want %d, %d", n, b, len(h.streams), h.m.bytes)
		}
		h.check()
	}
	t.Logf("outcomes: %v; ended streams forgotten to make room: %d", h.counts, h.made)
}

// advance moves the clock by ms, or past MaxAge, or to s's last activity + MaxAge.
func (h *modelTest) advance(s *mStream) {
	ms := h.rng.IntN(1000)
	switch r := h.rng.IntN(1000); {
	case r >= 995:
		ms = 60_001 + h.rng.IntN(30_000)
	case r >= 985 && s != nil && s.active.Add(modelMaxAge).After(h.now):
		ms = int(s.active.Add(modelMaxAge).Sub(h.now) / time.Millisecond)
	case r >= 950:
		ms = h.rng.IntN(5000)
	}
	h.now = h.now.Add(time.Duration(ms) * time.Millisecond)
}

func (h *modelTest) fail(format string, args ...any) {
	h.t.Helper()
	h.t.Fatalf("step %d: %s\nthe last operations:\n%s", h.step, fmt.Sprintf(format, args...), strings.Join(h.hist, "\n"))
}

func (h *modelTest) assert(ok bool, format string, args ...any) {
	if !ok {
		h.t.Helper()
		h.fail(format, args...)
	}
}

// expect records an operation and checks its error.
func (h *modelTest) expect(op string, got, want error) {
	h.t.Helper()
	h.hist = append(h.hist[max(0, len(h.hist)-19):], fmt.Sprintf("step %d at %v: %s: %v", h.step, h.now.Sub(time.Unix(1e9, 0)), op, got))
	h.counts[strings.Fields(op)[0]+" "+fmt.Sprint(got)]++
	var gx, wx *ExpiredError
	if errors.As(want, &wx) { // the owner of the last stream of that name
		h.assert(errors.As(got, &gx) && bytes.Equal(gx.Owner, wx.Owner), "%s: got error %v, want %v of owner %q", op, got, want, wx.Owner)
		return
	}
	h.assert(got == want, "%s: got error %v, want %v", op, got, want)
}

func (h *modelTest) touch(s *mStream) {
	h.tick++
	s.active, s.tick = h.now, h.tick
}

// forget: a name is expired for as long as MaxStreams names forgotten after allow.
func (h *modelTest) forget(name string) {
	h.goneOwner[name] = h.streams[name].owner
	delete(h.streams, name)
	h.gone = append(h.gone, name)
	h.gone = h.gone[max(0, len(h.gone)-modelMaxStreams):]
}

func (h *modelTest) live(name string) (*mStream, error) {
	if s := h.streams[name]; s != nil && h.now.Sub(s.active) <= modelMaxAge {
		return s, nil
	} else if s != nil {
		h.forget(name)
	}
	if slices.Contains(h.gone, name) {
		return nil, &ExpiredError{Owner: h.goneOwner[name]}
	}
	return nil, ErrNotFound
}

// sorted returns the model's streams being written, or ended, by activity.
func (h *modelTest) sorted(ended bool) []string {
	var names []string
	for name, s := range h.streams {
		if s.ended == ended {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(h.streams[a].tick, h.streams[b].tick) })
	return names
}

// evict forgets the expired streams (being written first), then, if forgetting
// them all makes the room, ended ones by activity.
func (h *modelTest) evict(n int, size int64) bool {
	for _, name := range append(h.sorted(false), h.sorted(true)...) {
		if h.now.Sub(h.streams[name].active) > modelMaxAge {
			h.forget(name)
		}
	}
	fits := func(ended bool) bool {
		n, size := n, size
		for _, s := range h.streams {
			if ended || !s.ended {
				n, size = n+1, size+s.bytes
			}
		}
		return n <= modelMaxStreams && size <= modelMaxBytes
	}
	for _, name := range h.sorted(true) {
		if !fits(false) || fits(true) {
			break
		}
		h.forget(name)
		h.made++
	}
	return fits(true)
}

func (h *modelTest) create(name string) {
	owner, want := fmt.Appendf(nil, "owner %d", h.step), ErrExists
	if h.streams[name] == nil { // Create does not look at its age
		if want = ErrFull; h.evict(1, memChunk+firstBatches*batchSize) {
			// Its first chunk, and its list of Appends.
			want, h.streams[name] = nil, &mStream{owner: bytes.Clone(owner), seen: h.now, written: h.now,
				bytes: memChunk + firstBatches*batchSize, tail: memChunk, listCap: firstBatches}
			h.touch(h.streams[name])
		}
	}
	err := h.m.Create(context.Background(), name, owner)
	clear(owner) // the store keeps a copy
	h.expect("Create "+name[:6], err, want)
}

// append appends 0-3 events of 0-3 KB, or one of 17-40 KB; a wrong Seq 1 in 10.
func (h *modelTest) append(name string) {
	next := uint64(1)
	if s := h.streams[name]; s != nil {
		next += uint64(len(s.evs))
	}
	n, lo, hi, off := h.rng.IntN(4), 0, 3<<10, 0
	if h.rng.IntN(20) == 0 {
		n, lo, hi = 1, 17<<10, 40<<10 // a batch that needs a chunk of its own
	}
	evs := make([]Event, n)
	for i := range evs {
		size, k := lo+h.rng.IntN(hi-lo+1), byte(h.rng.Uint32())
		d := h.buf[off : off+size : off+size]
		for j := range d {
			d[j] = k + byte(j*7)
		}
		evs[i], off = Event{Seq: next + uint64(i), Data: d}, off+size
	}
	if n > 0 && h.rng.IntN(10) == 0 {
		evs[h.rng.IntN(n)].Seq += uint64(2*h.rng.IntN(2)) - 1 // one more or one less
	}
	want := h.appendModel(name, evs)
	err := h.m.Append(context.Background(), name, evs)
	clear(h.buf[:off]) // the store keeps a copy
	h.expect(fmt.Sprintf("Append %s: %d events from %d, %d bytes", name[:6], n, next, off), err, want)
}

func (h *modelTest) appendModel(name string, evs []Event) error {
	s, err := h.live(name)
	if err != nil {
		return err
	} else if s.ended && len(evs) > 0 {
		return errEnded
	}
	size := 4 * len(evs) // where each event ends
	for i, e := range evs {
		if e.Seq != uint64(len(s.evs)+i+1) {
			return ErrSequence
		}
		size += len(e.Data)
	}
	// A batch larger than the last chunk's room takes a chunk: 16 KiB, or its own size.
	room := int64(max(size, memChunk))
	fresh := size > memChunk && s.batches == 0 && s.tail == memChunk // Create's chunk gives way to one of its own
	switch {
	case size <= s.tail:
		room = 0
	case fresh:
		room = int64(size - memChunk)
	}
	// A list of batches that is full doubles (from 8), counted too.
	listCap := s.listCap
	if len(evs) > 0 && s.batches == listCap {
		listCap = max(8, 2*listCap)
	}
	grown := int64(listCap-s.listCap) * batchSize
	if !h.evict(0, room+grown) {
		return ErrFull
	}
	if len(evs) > 0 {
		s.tail, s.bytes = max(s.tail, int(room))-size, s.bytes+room+grown
		if fresh {
			s.tail = 0
		}
		s.batches, s.listCap = s.batches+1, listCap
		for _, e := range evs {
			s.evs = append(s.evs, Event{e.Seq, bytes.Clone(e.Data)})
		}
	}
	s.written = h.now
	h.touch(s)
	return nil
}

func (h *modelTest) end(name string, cut bool) {
	s, want := h.live(name)
	if s != nil { // the first of End and EndTruncated counts
		s.cut, s.ended = s.cut || !s.ended && cut, true
		h.touch(s)
	}
	op, end := "End ", h.m.End
	if cut {
		op, end = "EndTruncated ", h.m.EndTruncated
	}
	h.expect(op+name[:6], end(context.Background(), name), want)
}

// read reads with a canceled ctx when the model says Read would wait (and 1 in 10).
func (h *modelTest) read(name string) {
	var after uint64
	if s := h.streams[name]; s != nil {
		after = uint64(h.rng.IntN(len(s.evs) + 2))
	}
	want, wantEnded, wantErr := h.readModel(name, after)
	ctx, cancel := context.WithCancel(context.Background())
	if wantErr == context.Canceled || h.rng.IntN(10) == 0 {
		cancel()
	}
	got, ended, err := h.m.Read(ctx, name, after)
	cancel()
	h.expect(fmt.Sprintf("Read %s after %d: %d events, ended %v", name[:6], after, len(got), ended), err, wantErr)
	h.assert(ended == wantEnded && len(got) == len(want), "Read: %d events, ended %v; want %d, %v", len(got), ended, len(want), wantEnded)
	for i, e := range got { // check: none is in the store's memory
		h.assert(e.Seq == want[i].Seq && bytes.Equal(e.Data, want[i].Data), "Read: event %d is seq %d, %d bytes; want seq %d, %d bytes", i, e.Seq, len(e.Data), want[i].Seq, len(want[i].Data))
		h.kept = append(h.kept, [2][]byte{e.Data, want[i].Data})
	}
	h.kept = h.kept[max(0, len(h.kept)-100):]
}

func (h *modelTest) readModel(name string, after uint64) ([]Event, bool, error) {
	s, err := h.live(name)
	if err != nil {
		return nil, false, err
	}
	s.seen = h.now
	h.touch(s)
	switch last := uint64(len(s.evs)); {
	case after < last: // at most readBatchEvents; readBatchBytes is more than MaxBytes
		evs := s.evs[after:min(last, after+readBatchEvents)]
		return evs, s.ended && !s.cut && evs[len(evs)-1].Seq == last, nil
	case !s.ended:
		return nil, false, context.Canceled // it would wait
	case s.cut:
		return nil, false, ErrTruncated
	}
	return nil, true, nil
}

func (h *modelTest) info(name string) {
	var want Info
	s, wantErr := h.live(name)
	if s != nil {
		want = Info{Owner: s.owner, Last: uint64(len(s.evs)), Ended: s.ended, Seen: s.seen, Written: s.written}
	}
	got, err := h.m.Info(context.Background(), name)
	h.expect("Info "+name[:6], err, wantErr)
	h.assert(bytes.Equal(got.Owner, want.Owner) && got.Last == want.Last && got.Ended == want.Ended &&
		got.Seen.Equal(want.Seen) && got.Written.Equal(want.Written), "Info: %+v, want %+v", got, want)
}

// check walks the store's internals after each step.
func (h *modelTest) check() {
	spans := h.checkLists()
	for _, c := range h.m.free {
		spans = append(spans, spanOf(c[:cap(c)]))
		h.assert(len(c) == memChunk, "a free chunk of %d bytes", len(c))
	}
	h.assert(len(h.m.free) <= int(modelMaxBytes/8/memChunk), "%d free chunks", len(h.m.free))
	for _, k := range h.kept {
		if len(k[0]) > 0 {
			spans = append(spans, spanOf(k[0]))
		}
	}
	slices.SortFunc(spans, func(a, b [2]uintptr) int { return cmp.Compare(a[0], b[0]) })
	for i := 1; i < len(spans); i++ {
		h.assert(spans[i][0] >= spans[i-1][1], "two chunks, or a chunk and one of the last 100 events read, share memory")
	}
	want := map[string]goneName{}
	for _, g := range h.gone {
		want[g] = goneName{n: want[g].n + 1, owner: h.goneOwner[g]}
	}
	same := maps.EqualFunc(h.m.expired, want, func(a, b goneName) bool { return a.n == b.n && bytes.Equal(a.owner, b.owner) })
	h.assert(slices.Equal(h.m.gone, h.gone) && same, "gone %v, expired %v; want %v, %v", h.m.gone, h.m.expired, h.gone, want)
	for i, k := range h.kept { // CRCs, not bytes.Equal: much faster under -race
		h.assert(crc32.ChecksumIEEE(k[0]) == crc32.ChecksumIEEE(k[1]), "event %d of the last 100 read has changed", i)
	}
}

// checkLists walks the lists, compares the streams with the model's, and
// returns the memory of their chunks.
func (h *modelTest) checkLists() (spans [][2]uintptr) {
	m, in := h.m, map[*memStream]bool{}
	walk := func(l *memList, ended bool) (n int, b int64) {
		var prev *memStream
		for s := l.front; s != nil; prev, s = s, s.next {
			ms, sum := h.streams[s.name], int64(0)
			for _, c := range s.chunks {
				spans, sum = append(spans, spanOf(c[:cap(c)])), sum+int64(len(c))
			}
			switch {
			case in[s] || s.prev != prev || m.streams[s.name] != s || s.ended != ended || ms == nil:
				h.fail("stream %s (ended %v) is twice in the lists, wrongly linked, in the wrong list, or held but not in the model", s.name[:6], s.ended)
			case prev != nil && s.active.Before(prev.active):
				h.fail("stream %s is before %s in its list", prev.name[:6], s.name[:6])
			case prev != nil && ms.tick < h.streams[prev.name].tick:
				h.fail("stream %s is after %s: want %v, %v", s.name[:6], prev.name[:6], h.sorted(false), h.sorted(true))
			case s.last != uint64(len(ms.evs)) || s.cut != ms.cut || !s.active.Equal(ms.active) || s.bytes != sum+int64(cap(s.batches))*batchSize || s.bytes != ms.bytes || len(s.tail) != ms.tail:
				h.fail("stream %s: last %d, cut %v, active %v, %d bytes (chunks of %d), tail %d; want %d, %v, %v, %d, %d", s.name[:6],
					s.last, s.cut, s.active, s.bytes, sum, len(s.tail), len(ms.evs), ms.cut, ms.active, ms.bytes, ms.tail)
			}
			in[s], n, b = true, n+1, b+s.bytes
		}
		h.assert(l.back == prev, "a list's back is not its last stream")
		return n, b
	}
	_, bw := walk(&m.writing, false)
	n, b := walk(&m.ended, true)
	h.assert(n == m.endedN && b == m.endedBytes && bw+b == m.bytes && m.bytes <= modelMaxBytes,
		"ended list: %d streams, %d bytes (endedN %d, endedBytes %d); bytes %d, streams' %d", n, b, m.endedN, m.endedBytes, m.bytes, bw+b)
	h.assert(len(in) == len(m.streams) && len(in) == len(h.streams) && len(in) <= modelMaxStreams,
		"%d streams in the lists, %d held; want %d", len(in), len(m.streams), len(h.streams))
	return spans
}

// spanOf returns the memory of b, [lo, hi).
func spanOf(b []byte) [2]uintptr {
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return [2]uintptr{lo, lo + uintptr(len(b))}
}
