package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	if cfg.RestoreFrom != "" {
		info, err := store.Restore(cfg.DataDir, cfg.RestoreFrom)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		logger.Info("data directory restored from a snapshot", "file", cfg.RestoreFrom, "slot", info.Index, "keys", info.Keys)
	}
	flt, err := loadFaults()
	if err != nil {
		return err
	}
	if flt.writeErrors.on || flt.fsyncErrors.on {
		logger.Warn("FAULT disk: the store's writes or fsyncs will fail", "writes_ok", flt.writeErrors.count(),
			"fsyncs_ok", flt.fsyncErrors.count(), "armed_by", flt.armedBy)
	}
	st, err := store.Open(cfg.DataDir, flt.storeOptions(store.Options{Logger: logger}))
	if err != nil {
		return err
	}
	defer st.Close()
	durable, err := st.Durable()
	if err != nil {
		return fmt.Errorf("load state from %s: %w", st.Path(), err)
	}
	snaps, err := openSnapshotFiles(cfg.DataDir, st, logger)
	if err != nil {
		return err
	}
	// A 1 MiB chunk takes milliseconds; a sender that does not answer one within
	// a few peer timeouts is stalled, and the transfer goes elsewhere.
	snaps.chunkTimeout = 5 * cfg.PeerTimeout
	if flt.forgetPromises {
		logger.Warn("FAULT forget-promises: starting without the acceptor's promises and accepted entries")
		durable = peer.Durable{Applied: durable.Applied, Compacted: durable.Compacted}
	}
	// The committed configuration, not the file, says who the members are: two
	// replicas started from files that differ must not count different majorities.
	fileList := list
	mem := membership{epoch: 1, members: slices.Clone(list)}
	slices.SortFunc(mem.members, func(a, b replicas.Replica) int { return compareIDs(a.ID, b.ID) })
	stored, err := st.Config()
	if err != nil {
		return err
	}
	if cfg.RestoreFrom != "" {
		// A cluster restored from a backup is a new cluster: its members are
		// the ones its replicas file names (often on new hosts), not the ones
		// the backup's cluster had.
		if stored != nil {
			if old, err := decodeMembership(stored); err == nil {
				mem.epoch = old.epoch
			}
		}
		if stored, err = encodeMembership(mem); err == nil {
			err = st.SetConfig(stored)
		}
		if err != nil {
			return fmt.Errorf("restore: record the configuration: %w", err)
		}
	}
	haveConfig := stored != nil
	if haveConfig {
		if mem, err = decodeMembership(stored); err != nil {
			return fmt.Errorf("%s: %w", st.Path(), err)
		}
		for _, d := range membershipDiff(mem, list) {
			if strings.HasPrefix(d, "replica ") && strings.Contains(d, " is at ") {
				logger.Info("the replicas file gives another address than the committed configuration; using the file's",
					"file", cfg.ReplicasFile, "epoch", mem.epoch, "difference", d)
				continue
			}
			logger.Warn("the replicas file differs from the committed configuration; the members are the configuration's",
				"file", cfg.ReplicasFile, "epoch", mem.epoch, "difference", d)
		}
		// Members from the configuration, addresses (its own too: that is where
		// it listens) from the file.
		mem = withFileAddresses(mem, list)
	}
	recordConfig := func() error {
		b, err := encodeMembership(mem)
		if err == nil {
			err = st.SetConfig(b)
		}
		if err != nil {
			return fmt.Errorf("record the configuration: %w", err)
		}
		logger.Info("recorded the replicas file as the committed configuration", "epoch", mem.epoch, "members", mem.ids())
		return nil
	}
	list = mem.members
	members := make(map[uint64]replicas.Replica, len(list))
	ids := make([]uint64, 0, len(list))
	peerAddrs := make(map[uint64]string)
	for _, r := range list {
		members[r.ID] = r
		ids = append(ids, r.ID)
	}
	// Every replica the file or the configuration names can be reached: the
	// file's extra lines are replicas joining (or left over), which a change may
	// add.
	for _, r := range append(slices.Clone(fileList), list...) {
		if r.ID != self.ID {
			if _, ok := peerAddrs[r.ID]; !ok || members[r.ID] == r {
				peerAddrs[r.ID] = r.PeerAddr
			}
		}
	}
	_, selfMember := mem.find(self.ID)

	// Bind both ports before doing anything else, so a port in use is reported at
	// once and nothing is left half started. The peer port serves from the start:
	// replicas starting together ask each other whether the cluster is new.
	var live atomic.Pointer[node]
	noState := durable.Promised == (peer.Ballot{}) && len(durable.Entries) == 0 && !flt.forgetPromises
	var planning atomic.Bool
	planning.Store(noState)
	// startNonce tells this start apart from any other of this replica's, in
	// the answers it gives while planning; foundedWith holds the others' start
	// nonces from the round in which this replica founded the cluster, written
	// once before planning ends (see planRebuild).
	var startNonce uint64
	if noState {
		startNonce = uint64(rand.Int64N(math.MaxInt64)) + 1
	}
	var foundedWith map[uint64]uint64
	if !haveConfig && !noState {
		// A store written before configurations were recorded: its file was the
		// configuration.
		if err := recordConfig(); err != nil {
			return err
		}
	}
	peerHandler := transport.WithInquire(transport.NewPeerHandler(
		func(ctx context.Context, m peer.Message) (peer.Message, error) {
			cfg.hooks.onPeerRequest(m)
			if n := live.Load(); n != nil {
				return n.step(ctx, m)
			}
			return peer.Message{}, errStarting
		},
		snaps, cfg.PeerTimeout),
		func(ctx context.Context, from uint64) (transport.Inquiry, error) {
			if n := live.Load(); n != nil {
				q, err := n.inquire(ctx)
				q.FoundedWith = foundedWith[from]
				return q, err
			}
			if planning.Load() {
				return transport.Inquiry{From: self.ID, Starting: true, StartNonce: startNonce}, nil
			}
			return transport.Inquiry{}, errStarting
		})
	ports, err := loadTLS(cfg, self, liveMembers(&live, peerAddrsOf(mem)), logger)
	if err != nil {
		return err
	}
	peerOpts := cfg.serverOptions(peerMaxFrame, logger.With("port", "peer"))
	peerOpts.TLS = ports.peerServer
	peerSrv, err := transport.Listen(self.PeerAddr, peerapi.NewPeerProcessor(peerHandler), peerOpts)
	if err != nil {
		return fmt.Errorf("peer service: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	sender := newPeerSender(runCtx, peerAddrs, func(m peer.Message) {
		if n := live.Load(); n != nil {
			n.deliver(m)
		}
	}, cfg.PeerTimeout, peerMaxFrame, ports.peerClient, logger)
	handler := &kvHandler{
		self:    self,
		store:   st,
		faults:  flt,
		snaps:   snaps,
		dataDir: cfg.DataDir,
		digest:  st.Digest,
		hooks:   cfg.hooks,
		timeout: func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, cfg.RequestTimeout)
		},
	}
	clientProc := newInflight(kvapi.NewKVProcessor(handler))
	// Until the node runs, the client port answers every call with Unavailable
	// naming what the replica waits for (phase).
	var phase atomic.Pointer[string]
	setPhase := func(p string) { phase.Store(&p) }
	setPhase("loading its state")
	gate := &startGate{starting: kvapi.NewKVProcessor(startingKV{self: self, phase: &phase}), serving: clientProc}
	clientOpts := cfg.serverOptions(clientMaxFrame, logger.With("port", "client"))
	clientOpts.TLS = ports.client
	clientSrv, err := transport.Listen(self.ClientAddr, gate, clientOpts)
	if err != nil {
		peerSrv.Close()
		cancel()
		sender.close()
		return fmt.Errorf("client service: %w", err)
	}
	var wg sync.WaitGroup
	serveErr := make(chan error, 2)
	serve := func(s *transport.Server) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Serve(); err != nil {
				serveErr <- err
			}
		}()
	}
	stopServers := func() {
		cancel()
		clientSrv.Close()
		peerSrv.Close()
		wg.Wait()
		sender.close()
	}
	serve(peerSrv)
	serve(clientSrv)

	joining := false
	if noState && cfg.Join {
		// A replica that has never been a member: it waits for a configuration
		// that includes it, whatever the others in its file say.
		logger.Info("joining: waiting for a member of a configuration that includes this replica")
		joining = true
		planning.Store(false)
	} else if noState {
		inquirers := make(map[uint64]inquirer, len(sender.links))
		for id, l := range sender.links {
			inquirers[id] = l.client
			if cfg.hooks != nil && cfg.hooks.inquire != nil {
				inquirers[id] = hookedInquirer{inquirer: l.client, to: id, hooks: cfg.hooks}
			}
		}
		setPhase("it has no acceptor state and is asking the other replicas whether the cluster has history")
		hold := 4*time.Duration(cfg.ElectionTicks)*cfg.Tick + 2*cfg.PeerTimeout
		plan, err := planRebuild(runCtx, self.ID, durable.Applied, startNonce, inquirers, len(list), hold, cfg.PeerTimeout, logger)
		if err != nil {
			stopServers()
			if ctx.Err() != nil {
				// Asked to stop while waiting for the others: a graceful stop.
				logger.Info("replica stopped before the other replicas answered")
				return nil
			}
			return fmt.Errorf("start without acceptor state: %w", err)
		}
		if plan.rebuild {
			upTo := max(plan.upTo, durable.Applied)
			if err := st.SetRebuildTo(upTo); err != nil {
				stopServers()
				return err
			}
			if err := st.Save(true, plan.promised, nil); err != nil {
				stopServers()
				return err
			}
			durable.Promised, durable.RebuildTo = plan.promised, upTo
			logger.Warn("rebuilding lost acceptor state: no votes until the log is learned up to the slot the others report",
				"promised", plan.promised.String(), "rebuild_to", upTo)
		}
		if plan.rebuild || plan.late {
			// Without a configuration of its own it learns the cluster's from a
			// snapshot before it takes part, unless the others are in one that
			// includes it (it lost its disk, or started late in a new cluster):
			// then it takes part in that one, rebuilding if it must.
			joining = !haveConfig
			if joining && plan.epoch != 0 && slices.Contains(plan.members, self.ID) {
				known := membership{epoch: plan.epoch}
				for _, id := range plan.members {
					if r, ok := replicas.Find(fileList, id); ok {
						known.members = append(known.members, r)
					}
				}
				if len(known.members) == len(plan.members) {
					mem, joining = known, false
					if err := recordConfig(); err != nil {
						stopServers()
						return err
					}
				}
			}
		} else {
			foundedWith = plan.saw
			logger.Info("new cluster: every replica is starting without state")
			if !haveConfig {
				if err := recordConfig(); err != nil {
					stopServers()
					return err
				}
			}
		}
		planning.Store(false)
		setPhase("loading its state")
	}

	coreConfig := peer.Config{
		ID:             self.ID,
		Members:        ids,
		ElectionTicks:  cfg.ElectionTicks,
		HeartbeatTicks: cfg.HeartbeatTicks,
		// Always, leases or not: a replica restarted in a cluster where any
		// leader serves leased reads must not help elect another too soon.
		HoldVotesAfterStart: true,
		Thrifty:             !cfg.AcceptsToAll,
		Seed:                seed(),
		Logger:              cfg.Logger,
	}
	// The plan may have named the configuration this replica is in.
	coreConfig.Members = mem.ids()
	_, selfMember = mem.find(self.ID)
	retired := !selfMember && !joining
	if retired || joining {
		// Not voting: the core is never ticked or stepped, only asked for status.
		coreConfig.Members = []uint64{self.ID}
	}
	if retired {
		logger.Warn("not a member of the committed configuration: not voting, sending clients to the members",
			"epoch", mem.epoch, "members", mem.ids())
	}
	core, err := peer.New(coreConfig, durable)
	if err != nil {
		stopServers()
		return err
	}
	n := newNode(core, st, sender, cfg.Tick, cfg.MaxInFlightSlots, logger)
	if !cfg.ReadIndexOnly {
		n.leaseClock = &leaseClock{duration: leaseDuration(cfg.Tick, cfg.ElectionTicks)}
	}
	n.compact = &compaction{
		policy: snapshotPolicy{
			everySlots:   cfg.SnapshotEverySlots,
			everyBytes:   cfg.SnapshotEveryBytes,
			retainSlots:  cfg.SnapshotRetainSlots,
			retainBytes:  cfg.SnapshotRetainBytes,
			rewriteBytes: cfg.RewriteMinBytes,
		},
		files:        snaps,
		lastSnapshot: max(snaps.Latest().Index, durable.Compacted),
		rewrittenAt:  st.FileSize(),
		fetcher: func(id uint64) snapshotFetcher {
			if l, ok := sender.links[id]; ok {
				return l.client
			}
			return nil
		},
	}
	n.rebuilding = durable.RebuildTo != 0
	n.mem, n.retired, n.joining = mem, retired, joining
	if joining {
		n.mem = membership{members: fileList}
	}
	n.coreConfig = coreConfig
	n.selfAddr = self.PeerAddr
	n.fileList = fileList
	n.storagePath = st.Path()
	n.links = func(rs []replicas.Replica) {
		for _, r := range rs {
			if r.ID != self.ID {
				sender.add(r.ID, r.PeerAddr)
			}
		}
	}
	n.publish()
	handler.node = n
	live.Store(n)
	gate.open.Store(true)
	logger.Info("replica started", "client_addr", self.ClientAddr, "peer_addr", self.PeerAddr,
		"members", len(ids), "data", st.Path(), "applied", durable.Applied, "log_entries", len(durable.Entries))

	loopErr := make(chan error, 1)
	go func() { loopErr <- n.run(runCtx) }()

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("replica stopping")
	case runErr = <-loopErr:
		loopErr <- runErr
		if runErr != nil {
			// Storage failed: the clients waiting here have been answered with
			// the failure; let those answers go out before the connections close.
			clientProc.waitIdle(time.Second)
		}
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
