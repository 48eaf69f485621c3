/* The circuit breaker's state machine: CLOSED, OPEN, HALF_OPEN, with permits that carry the
 * generation they were issued in, and outcomes that arrive in any order, late or never.
 *
 * @models microstatedb.resilience._breaker:CircuitBreaker._acquire_slow
 * @models microstatedb.resilience._breaker:CircuitBreaker._record_locked
 * @models microstatedb.resilience._breaker:CircuitBreaker._record_half_open
 * @models microstatedb.resilience._breaker:CircuitBreaker._expire_timers
 * @models microstatedb.resilience._breaker:CircuitBreaker._transition
 * @property HALF_OPEN admits at most permitted_calls_in_half_open probes
 * @property HALF_OPEN closes or reopens only on the outcomes of its own probes
 * @property no call is admitted while OPEN and its wait has not passed
 *
 * Bounds: 3 callers, a window of 2 calls (the breaker opens when both failed), 2 probes in
 * HALF_OPEN, at most 5 transitions. Outcomes are success or failure, chosen freely.
 * Mutants: NO_GEN (an outcome counts whatever generation its permit came from),
 * NO_SLOTS (HALF_OPEN does not count the probes it lets through).
 */
#define CLOSED 0
#define OPEN 1
#define HALF 2
#define C 3
#define K 2
#define MAXT 5
byte state; byte gen; byte trans;
bool waited;            /* the wait in OPEN has passed */
byte slots;             /* probes left in HALF_OPEN */
byte wcalls; byte wfail; /* the CLOSED window */
byte hocalls; byte hofail;
bool holds[C]; byte pgen[C];  /* a caller holds a permit from generation pgen */
byte probes;            /* ghost: permits issued in the current HALF_OPEN */
byte probeouts;         /* ghost: outcomes of current-generation probes counted */

inline transition(to) {
  trans++; gen++; state = to; wcalls = 0; wfail = 0; waited = 0;
  if :: to == HALF -> slots = K; hocalls = 0; hofail = 0; probes = 0; probeouts = 0 :: else fi
}

active proctype breaker() {
  byte c; bool failed;
  do
  /* time passes: the wait in OPEN is over */
  :: atomic { state == OPEN && !waited -> waited = 1 }
  /* a caller asks for a permit (try_acquire / _acquire_slow with _expire_timers) */
  :: atomic { select(c : 0 .. C-1);
       if
       :: !holds[c] && trans < MAXT ->
          if :: state == OPEN && waited -> transition(HALF) :: else fi;
          if
          :: state == CLOSED -> holds[c] = 1; pgen[c] = gen
          :: state == HALF && slots > 0 ->
#ifndef NO_SLOTS
             slots--;
#endif
             holds[c] = 1; pgen[c] = gen; probes++; assert(probes <= K)
          :: else -> assert(state != CLOSED)      /* refused: only when not CLOSED */
          fi
       :: else
       fi; c = 0 }
  /* a caller reports its outcome (_record_locked) */
  :: atomic { select(c : 0 .. C-1);
       if
       :: holds[c] ->
          holds[c] = 0;
          if :: failed = 1 :: failed = 0 fi;
#ifdef NO_GEN
          if
          :: trans < MAXT || state != HALF ->
#else
          if
          :: pgen[c] == gen ->
#endif
             if
             :: state == HALF ->
                if :: pgen[c] == gen -> probeouts++ :: else fi;
                hocalls++; hofail = hofail + failed;
                if
                :: hocalls >= K ->
                   assert(probeouts == K);       /* decided on its own probes only */
                   if :: hofail > 0 -> transition(OPEN) :: else -> transition(CLOSED) fi
                :: else
                fi
             :: state == CLOSED ->
                wcalls++; wfail = wfail + failed;
                if :: wcalls >= 2 && wfail >= 2 -> transition(OPEN)
                   :: wcalls >= 2 && wfail < 2 -> wcalls = 0; wfail = 0
                   :: else fi
             :: else
             fi
          :: else                                /* a permit from before a transition */
          fi
       :: else
       fi; c = 0; failed = 0 }
  od
}
