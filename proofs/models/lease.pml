/* Read leases over per-key consensus (CASPaxos): 3 acceptors, 2 proposers, 1 key.
 *
 * @models microstatedb.protocols._quorum:QuorumNode._on_accept
 * @models microstatedb.protocols._quorum:QuorumNode._on_accepted
 * @models microstatedb.protocols._quorum:QuorumNode._on_invalidated
 * @models microstatedb.protocols._quorum:QuorumNode._on_lease_ask
 * @models microstatedb.protocols._quorum:QuorumNode._release
 * @models microstatedb.protocols._lease:LeaseHolder.granted
 * @models microstatedb.protocols._lease:LeaseHolder.fence
 * @models microstatedb.protocols._lease:LeaseHolder.fill
 * @models microstatedb.protocols._lease:LeaseHolder.read
 * @models microstatedb.protocols._lease:LeaseTable.grant
 * @property a lease read never returns a value older than the last acknowledged write
 *
 * The run starts after proposer 0 (on the lease holder's node) wrote value 1 at ballot 1: every
 * acceptor accepted it and the holder caches it. Proposer 1 then writes value 2 at ballot 3
 * (its prepare phase is one step: every promise reports value 1), while the holder asks for
 * leases, serves reads, and time passes. Keys are independent in the code (one register and
 * one lease-table entry per key), so one key covers the per-key protocol.
 *
 * Time is a global tick. Clock-rate drift is a bound on lease ticks: an acceptor's grant lasts
 * DMIN or D real ticks (its clock may run fast), the holder trusts a grant for HMAX real ticks
 * from the moment it sent the request. The z3 proof "lease-timing" shows that
 * LeaseConfig.holder_duration gives HMAX <= DMIN for every drift in [0, 0.5).
 *
 * Faults: messages are delivered in any order or never (loss); an acceptor may crash and
 * restart once (durable accepted value, lost lease table: it grants and acknowledges nothing
 * until a full lease has passed); with -DHCRASH=1 the holder may crash too (it loses grants,
 * cache and requests; off by default, as it only forgets). Bounds: TMAX=3 ticks, one lease
 * request (-DASKS=2 for two).
 *
 * Mutants: NO_INVALIDATE (acknowledge a write without waiting for the lease holder),
 * NO_DRIFT (the holder trusts a grant for the acceptor's full duration), FORGET_LEASES (a
 * restarted acceptor acknowledges at once), NO_FENCE (the holder ignores the ballots that
 * grants and invalidations carry).
 */
#define N 3
#define MAJ 2
#define TMAX 3
#define D 2
#define DMIN 1
#ifdef NO_DRIFT
#define HMAX 2
#else
#define HMAX 1
#endif
#define B 3                /* proposer 1's ballot */
#ifndef ASKS
#define ASKS 1
#endif
#ifndef HCRASH
#define HCRASH 0
#endif

byte now;
byte accb[N]; byte accv[N];
byte lexp[N];              /* acceptor's lease for the holder: live while now < lexp */
byte safe[N];              /* after a restart: no grant and no acknowledgement before this */
bool pend[N];              /* an accept of ballot B waits for the holder's invalidated */
bool facc[N];              /* accept of ballot B in flight to acceptor i */
bool started; byte accs;   /* proposer 1: started, acceptors that acknowledged (count) */
byte hg[N];                /* holder trusts acceptor i's grant while now < hg[i] */
byte fence; byte cb; byte cv;
byte asked = 255;          /* send time of the outstanding lease request */
bool fask[N]; byte fgrant[N];  /* a grant carries the acceptor's accepted ballot + 1 */
bool finv[N]; bool finvd[N];
byte acked;                /* ghost: the highest value acknowledged to a client */
bool acrash = 1; bool hcrash = HCRASH; byte asks = ASKS;

inline acknowledge(i) {
  accs++;
  if :: accs == MAJ -> acked = 2 :: else fi   /* proposer 1's write is acknowledged */
}

active proctype world() {
  byte i, c;
  atomic { for (i : 0 .. N-1) { accb[i] = 1; accv[i] = 1 }; acked = 1; cb = 1; cv = 1; i = 0 }
  do
  :: atomic { now < TMAX -> now++ }
  /* proposer 1 sends its accepts */
  :: atomic { !started -> started = 1; facc[0] = 1; facc[1] = 1; facc[2] = 1 }
  /* an acceptor gets the accept (_on_accept): the lease rule */
  :: atomic { select(i : 0 .. N-1);
       if
       :: facc[i] -> facc[i] = 0; accb[i] = B; accv[i] = 2;
#ifdef NO_INVALIDATE
          if :: now >= safe[i] -> acknowledge(i) :: else -> pend[i] = 1 fi
#else
          if
          :: lexp[i] <= now && now >= safe[i] -> acknowledge(i)
          :: else -> pend[i] = 1; if :: lexp[i] > now -> finv[i] = 1 :: else fi
          fi
#endif
       :: else
       fi; i = 0 }
  /* a waiting acknowledgement goes out once the lease ran out (_release) */
  :: atomic { select(i : 0 .. N-1);
       if :: pend[i] && now >= lexp[i] && now >= safe[i] -> pend[i] = 0; acknowledge(i) :: else fi;
       i = 0 }
  /* the holder asks every acceptor for a lease */
  :: atomic { asks > 0 && asked == 255 -> asks--; asked = now; fask[0] = 1; fask[1] = 1; fask[2] = 1 }
  /* an acceptor grants (_on_lease_ask, LeaseTable.grant); its clock rate sets the length */
  :: atomic { select(i : 0 .. N-1);
       if
       :: fask[i] && now >= safe[i] -> fask[i] = 0;
          if :: c = now + DMIN :: c = now + D fi;
          if :: c > lexp[i] -> lexp[i] = c :: else fi;
          fgrant[i] = accb[i] + 1
       :: else
       fi; i = 0; c = 0 }
  /* the holder gets a grant (LeaseHolder.granted): trusted from the request's send time */
  :: atomic { select(i : 0 .. N-1);
       if
       :: fgrant[i] != 0 && asked != 255 ->
#ifndef NO_FENCE
          if :: fgrant[i] - 1 > fence -> fence = fgrant[i] - 1 :: else fi;
#endif
          fgrant[i] = 0;
          if :: asked + HMAX > hg[i] -> hg[i] = asked + HMAX :: else fi
       :: else
       fi; i = 0 }
  :: atomic { asked != 255 && !fask[0] && !fask[1] && !fask[2] && fgrant[0] == 0 && fgrant[1] == 0 && fgrant[2] == 0 -> asked = 255 }
  /* the holder gets an invalidation (LeaseHolder.fence) and answers */
  :: atomic { select(i : 0 .. N-1);
       if
       :: finv[i] -> finv[i] = 0;
#ifndef NO_FENCE
          if :: B > fence -> fence = B :: else fi;
#endif
          finvd[i] = 1
       :: else
       fi; i = 0 }
  /* the acceptor gets invalidated (_on_invalidated) */
  :: atomic { select(i : 0 .. N-1);
       if :: finvd[i] -> finvd[i] = 0; if :: pend[i] && now >= safe[i] -> pend[i] = 0; acknowledge(i) :: else fi
       :: else fi; i = 0 }
  /* the holder serves a read from its lease (LeaseHolder.read) */
  :: atomic { cb != 0 && cb >= fence ->
       c = (hg[0] > now) + (hg[1] > now) + (hg[2] > now);
       if :: c >= MAJ -> assert(cv >= acked) :: else fi; c = 0 }
  /* an acceptor crashes and restarts: durable accepted value, lease table lost */
  :: atomic { acrash -> acrash = 0; select(i : 0 .. N-1); lexp[i] = 0; pend[i] = 0;
#ifndef FORGET_LEASES
       safe[i] = now + D;
#endif
       i = 0 }
  /* the holder's node crashes: grants, cache and requests are volatile */
  :: atomic { hcrash -> hcrash = 0; hg[0] = 0; hg[1] = 0; hg[2] = 0; cb = 0; cv = 0; fence = 0;
       asked = 255; fgrant[0] = 0; fgrant[1] = 0; fgrant[2] = 0 }
  od
}
