/* Causal delivery in one replica: events arrive in any order, duplicated, and a full buffer
 * drops them (anti-entropy sends them again).
 *
 * @models microstatedb.replica._store:Store._receive
 * @models microstatedb.replica._store:Store._ready
 * @models microstatedb.replica._store:Store._drain
 * @property an event is applied only after every event it depends on (causal order)
 * @property an event is applied at most once, and per origin in sequence order
 *
 * Events: a1, a2 from origin A; b1 from origin B, written after B saw a2 (deps {A:2});
 * b2 from B. Each event is delivered up to twice; the buffer holds BUF events.
 * Mutants: NO_READY (apply the next sequence number without checking its dependencies),
 * NO_SEQ (the drain applies any buffered event whose dependencies are met, not only the next
 * sequence number of its origin).
 */
#define E 4
#ifdef NO_SEQ
#define NEXT(j) (seq[j] > vv[origin[j]])
#else
#define NEXT(j) (seq[j] == vv[origin[j]] + 1)
#endif
#define BUF 2
byte origin[E]; byte seq[E]; byte depo[E]; byte depn[E];
byte vv[2];
bool buffered[E]; byte nbuf;
byte sends[E];           /* deliveries left per event */
byte applied[E];         /* ghost: how many times each event was applied */

inline apply(e) {
  assert(vv[depo[e]] >= depn[e]);          /* causal order */
  assert(seq[e] == vv[origin[e]] + 1);     /* per-origin order, no gap, no repeat */
  applied[e]++;
  assert(applied[e] == 1);
  vv[origin[e]] = seq[e]
}

#ifdef NO_READY
#define ready(e) true
#else
#define ready(e) (vv[depo[e]] >= depn[e])
#endif

inline drain() {
  progress = 1;
  do
  :: progress ->
     progress = 0;
     for (j : 0 .. E-1) {
       if
       :: buffered[j] && NEXT(j) && ready(j) ->
          buffered[j] = 0; nbuf--; apply(j); progress = 1
       :: buffered[j] && seq[j] <= vv[origin[j]] -> buffered[j] = 0; nbuf--
       :: else
       fi
     }
  :: else -> break
  od;
  j = 0
}

active proctype replica() {
  byte e, j; bool progress;
  atomic {
    origin[0] = 0; seq[0] = 1; origin[1] = 0; seq[1] = 2;
    origin[2] = 1; seq[2] = 1; depo[2] = 0; depn[2] = 2;
    origin[3] = 1; seq[3] = 2;
    for (e : 0 .. E-1) { sends[e] = 2 }
    e = 0
  }
  do
  :: atomic { select(e : 0 .. E-1);
       if
       :: sends[e] > 0 ->
          sends[e]--;
          if
          :: seq[e] <= vv[origin[e]] -> skip          /* seen: drop */
          :: seq[e] == vv[origin[e]] + 1 && ready(e) -> apply(e); drain()
          :: else ->
             if
             :: buffered[e] -> skip
             :: !buffered[e] && nbuf >= BUF -> skip    /* full: dropped, sent again later */
             :: !buffered[e] && nbuf < BUF -> buffered[e] = 1; nbuf++
             fi
          fi
       :: else
       fi;
       e = 0; progress = 0 }
  od
}
