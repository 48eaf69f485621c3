/* Per-key consensus without leases (CASPaxos): 3 acceptors, 2 proposers, each change an
 * increment of the register.
 *
 * @models microstatedb.protocols._quorum:QuorumNode._prepare
 * @models microstatedb.protocols._quorum:QuorumNode._on_prepare
 * @models microstatedb.protocols._quorum:QuorumNode._on_promise
 * @models microstatedb.protocols._quorum:QuorumNode._on_accept
 * @models microstatedb.protocols._quorum:QuorumNode._on_accepted
 * @models microstatedb.protocols._quorum:QuorumNode._on_reject
 * @property a change chosen at a higher ballot builds on every change chosen before it
 *
 * Each proposer runs up to ROUNDS rounds (a rejection starts the next, with a higher
 * ballot; ROUNDS=1 in CI: a rejected proposer gives up, 2 rounds exceed the time budget);
 * messages are delivered in any order or never; a promise or accept that arrives
 * for an old ballot is ignored. Values are increments, so "builds on" is "is larger".
 * Mutants: NO_ADOPT (the proposer ignores the accepted values its promises report),
 * NO_PROMISE_CHECK (an acceptor accepts below the ballot it promised).
 */
#define N 3
#define MAJ 2
#define ROUNDS 1
byte prom[N]; byte accb[N]; byte accv[N];
byte ph[2]; byte rnd[2]; byte bal[2]; byte prm[2]; byte hb[2]; byte hv[2]; byte nv[2]; byte acc[2];
byte fprep[6]; byte fprom[6]; byte fpb[6]; byte fpv[6]; byte facc[6]; byte fad[6]; byte frej[6];
byte lastb; byte lastv;   /* ghost: the highest ballot chosen so far and its value */

#define COUNT(m) (((m) & 1) + (((m) >> 1) & 1) + (((m) >> 2) & 1))

active proctype world() {
  byte i, p, k, b;
  do
  :: atomic { select(p : 0 .. 1);
       if
       :: ph[p] == 0 && rnd[p] < ROUNDS ->
          rnd[p]++; bal[p] = 2 * rnd[p] + p; ph[p] = 1; prm[p] = 0; acc[p] = 0; hb[p] = 0; hv[p] = 0;
          for (i : 0 .. N-1) { fprep[p*N+i] = bal[p] }
       :: else
       fi; i = 0; p = 0 }
  :: atomic { select(k : 0 .. 5);     /* _on_prepare */
       if
       :: fprep[k] != 0 -> i = k % N; b = fprep[k]; fprep[k] = 0;
          if
          :: b >= prom[i] -> prom[i] = b; fprom[k] = b; fpb[k] = accb[i]; fpv[k] = accv[i]
          :: else -> frej[k] = b
          fi
       :: else
       fi; i = 0; k = 0; b = 0 }
  :: atomic { select(k : 0 .. 5);     /* _on_promise */
       if
       :: fprom[k] != 0 -> i = k % N; p = k / N; b = fprom[k]; fprom[k] = 0;
          if
          :: ph[p] == 1 && b == bal[p] ->
             prm[p] = prm[p] | (1 << i);
             if :: fpb[k] >= hb[p] -> hb[p] = fpb[k]; hv[p] = fpv[k] :: else fi;
             if
             :: COUNT(prm[p]) >= MAJ -> ph[p] = 2;
#ifdef NO_ADOPT
                nv[p] = 1;
#else
                nv[p] = hv[p] + 1;
#endif
                for (i : 0 .. N-1) { facc[p*N+i] = bal[p] }
             :: else
             fi
          :: else
          fi;
          fpb[k] = 0; fpv[k] = 0
       :: else
       fi; i = 0; p = 0; k = 0; b = 0 }
  :: atomic { select(k : 0 .. 5);     /* _on_accept */
       if
       :: facc[k] != 0 -> i = k % N; p = k / N; b = facc[k]; facc[k] = 0;
          if
#ifdef NO_PROMISE_CHECK
          :: true ->
#else
          :: b >= prom[i] ->
#endif
             prom[i] = b; accb[i] = b; accv[i] = nv[p]; fad[k] = b
          :: else -> frej[k] = b
          fi
       :: else
       fi; i = 0; p = 0; k = 0; b = 0 }
  :: atomic { select(k : 0 .. 5);     /* _on_accepted */
       if
       :: fad[k] != 0 -> i = k % N; p = k / N; b = fad[k]; fad[k] = 0;
          if
          :: ph[p] == 2 && b == bal[p] ->
             acc[p] = acc[p] | (1 << i);
             if
             :: COUNT(acc[p]) >= MAJ ->
                if :: b > lastb -> assert(nv[p] > lastv); lastb = b; lastv = nv[p] :: else fi;
                ph[p] = 3
             :: else
             fi
          :: else
          fi
       :: else
       fi; i = 0; p = 0; k = 0; b = 0 }
  :: atomic { select(k : 0 .. 5);     /* _on_reject: a new round */
       if
       :: frej[k] != 0 -> p = k / N; b = frej[k]; frej[k] = 0;
          if :: (ph[p] == 1 || ph[p] == 2) && b == bal[p] -> ph[p] = 0 :: else fi
       :: else
       fi; p = 0; k = 0; b = 0 }
  od
}
