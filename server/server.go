package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/ballot-kv/ballot/gen/kvapi"
	"github.com/ballot-kv/ballot/gen/peerapi"
	"github.com/ballot-kv/ballot/peer"
	"github.com/ballot-kv/ballot/replicas"
	"github.com/ballot-kv/ballot/store"
	"github.com/ballot-kv/ballot/transport"
)

// Frame limits: just above the largest legal message on each port, so a garbage
// length prefix cannot make the replica allocate much.
const (
	clientMaxFrame = kvapi.MAX_VALUE_BYTES + kvapi.MAX_KEY_BYTES + 64<<10
	peerMaxFrame   = 64 << 20
)

// Run starts the replica cfg describes and serves until ctx ends, then stops
// gracefully. It returns an error that names what failed if the replica cannot
// start, or if its storage fails while it runs.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	logger := cfg.Logger.With("replica", cfg.ID)

	list, err := replicas.Load(cfg.ReplicasFile)
	if err != nil {
		return err
	}
	self, ok := replicas.Find(list, cfg.ID)
	if !ok {
		return fmt.Errorf("replica id %d is not listed in %s", cfg.ID, cfg.ReplicasFile)
	}
	st, err := store.Open(cfg.DataDir, store.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer st.Close()
	durable, err := st.Durable()
	if err != nil {
		return fmt.Errorf("load state from %s: %w", st.Path(), err)
	}
	flt, err := loadFaults()
	if err != nil {
		return err
	}
	if flt.forgetPromises {
		logger.Warn("FAULT forget-promises: starting without the acceptor's promises and accepted entries")
		durable = peer.Durable{Applied: durable.Applied}
	}
	members := make(map[uint64]replicas.Replica, len(list))
	ids := make([]uint64, 0, len(list))
	peerAddrs := make(map[uint64]string)
	for _, r := range list {
		members[r.ID] = r
		ids = append(ids, r.ID)
		if r.ID != self.ID {
			peerAddrs[r.ID] = r.PeerAddr
		}
	}
	core, err := peer.New(peer.Config{
		ID:             self.ID,
		Members:        ids,
		ElectionTicks:  cfg.ElectionTicks,
		HeartbeatTicks: cfg.HeartbeatTicks,
		Seed:           seed(),
		Logger:         cfg.Logger,
	}, durable)
	if err != nil {
		return err
	}

	// Bind both ports before doing anything else, so a port in use is reported at
	// once and nothing is left half started.
	var n *node
	peerSrv, err := transport.Listen(self.PeerAddr, peerapi.NewPeerProcessor(transport.NewPeerHandler(
		func(ctx context.Context, m peer.Message) (peer.Message, error) { return n.step(ctx, m) },
		nil, // no snapshots served yet: fetch_snapshot answers that there is none
		cfg.PeerTimeout)), transport.ServerOptions{MaxFrameSize: peerMaxFrame, Logger: logger.With("port", "peer")})
	if err != nil {
		return fmt.Errorf("peer service: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	sender := newPeerSender(runCtx, peerAddrs, func(m peer.Message) { n.deliver(m) }, cfg.PeerTimeout, peerMaxFrame, logger)
	n = newNode(core, st, sender, cfg.Tick, cfg.MaxInFlightSlots, logger)
	handler := &kvHandler{
		node:    n,
		self:    self,
		members: members,
		store:   st,
		faults:  flt,
		timeout: func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, cfg.RequestTimeout)
		},
	}
	clientSrv, err := transport.Listen(self.ClientAddr, kvapi.NewKVProcessor(handler),
		transport.ServerOptions{MaxFrameSize: clientMaxFrame, Logger: logger.With("port", "client")})
	if err != nil {
		peerSrv.Close()
		cancel()
		sender.close()
		return fmt.Errorf("client service: %w", err)
	}
	logger.Info("replica started", "client_addr", self.ClientAddr, "peer_addr", self.PeerAddr,
		"members", len(ids), "data", st.Path(), "applied", durable.Applied, "log_entries", len(durable.Entries))

	var wg sync.WaitGroup
	serveErr := make(chan error, 2)
	for _, s := range []*transport.Server{peerSrv, clientSrv} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Serve(); err != nil {
				serveErr <- err
			}
		}()
	}
	loopErr := make(chan error, 1)
	go func() { loopErr <- n.run(runCtx) }()

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("replica stopping")
	case runErr = <-loopErr:
		loopErr <- runErr
	case runErr = <-serveErr:
		logger.Error("server failed", "err", runErr)
	}
	cancel()
	clientSrv.Close()
	peerSrv.Close()
	wg.Wait()
	if err := <-loopErr; err != nil && runErr == nil {
		runErr = err
	}
	sender.close()
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	logger.Info("replica stopped", "applied", st.Applied())
	return nil
}

// Logger returns the default text logger for a replica.
func Logger(level slog.Level, w interface{ Write([]byte) (int, error) }) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
