package reconciler

import "github.com/hivelet/hivelet/datapath"

// pipeline hands full batches to one writer goroutine, in order, so the
// next batch is diffed while the kernel takes the previous one. Batches
// are applied strictly in sequence: a backend created in one batch exists
// before a later batch points at it.
type pipeline struct {
	lbmap   datapath.LBMap
	ch      *datapath.Changes // the batch being filled
	queue   chan *datapath.Changes
	done    chan error
	started bool
	chunk   int

	upserts, deletes, backends int
	// seen, when set, is told every batch before it is written.
	seen func(*datapath.Changes)
}

func newPipeline(lbmap datapath.LBMap, chunk int, seen func(*datapath.Changes)) *pipeline {
	return &pipeline{lbmap: lbmap, chunk: chunk, ch: newChanges(chunk), seen: seen}
}

// maybeFlush sends the current batch once it is big enough.
func (p *pipeline) maybeFlush() {
	if len(p.ch.UpsertServices)+len(p.ch.DeleteServices) < p.chunk {
		return
	}
	if !p.started {
		p.started = true
		p.queue = make(chan *datapath.Changes, 1)
		p.done = make(chan error, 1)
		go p.write()
	}
	p.count(p.ch)
	p.queue <- p.ch
	p.ch = newChanges(p.chunk)
}

func (p *pipeline) write() {
	var err error
	for ch := range p.queue {
		if err == nil {
			err = p.lbmap.Apply(ch) // after a failure, drain without writing
		}
	}
	p.done <- err
}

func (p *pipeline) count(ch *datapath.Changes) {
	if p.seen != nil {
		p.seen(ch)
	}
	p.upserts += len(ch.UpsertServices)
	p.deletes += len(ch.DeleteServices)
	p.backends += len(ch.UpsertBackends)
}

// finish applies the last batch after all queued ones and returns the
// first error.
func (p *pipeline) finish() error {
	var err error
	if p.started {
		close(p.queue)
		err = <-p.done
	}
	p.count(p.ch)
	if err != nil {
		return err
	}
	if p.ch.Empty() {
		return nil
	}
	return p.lbmap.Apply(p.ch)
}
