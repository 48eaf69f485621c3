/* The idempotency barrier of a saga step: the action and its compensation arrive in any
 * order, each possibly more than once (retries, duplicates).
 *
 * @models microstatedb.protocols._barrier:Barrier.run
 * @models microstatedb.protocols._barrier:Journal.put_and_apply
 * @models microstatedb.protocols._saga:SagaParticipant.receive
 * @property a step's action is applied at most once, and its compensation at most once
 * @property a compensation undoes only an action that ran (null compensation otherwise)
 * @property an action that arrives after its compensation is refused (no hanging)
 *
 * The body's outcome is chosen freely: ok, a business failure, or retry (nothing recorded).
 * Mutants: NO_BLOCK (a compensation of an unseen action does not block it first),
 * NO_RECORD (the action's record is not consulted, so a repeat runs the body again).
 */
#define OK 1
#define FAILED 2
#define REFUSED 3
#define NULLC 4
byte ract;            /* record b/<branch>/action: 0 none, OK, FAILED, REFUSED */
byte rcomp;           /* record b/<branch>/compensate: 0 none, OK, NULLC */
byte actions;         /* ghost: times the action's writes were applied */
byte comps;           /* ghost: times the compensation's writes were applied */
byte nact = 2; byte ncomp = 2;

active proctype barrier() {
  do
  /* an action arrives (Barrier.run op=action) */
  :: atomic { nact > 0 -> nact--;
       if
#ifdef NO_RECORD
       :: ract == REFUSED -> skip
       :: ract != REFUSED ->
#else
       :: ract != 0 -> skip                       /* repeated: its first outcome answered */
       :: ract == 0 ->
#endif
          if
          :: ract = OK; actions++; assert(actions == 1); assert(rcomp == 0)
          :: ract = FAILED
          :: skip                                 /* retry: nothing recorded */
          fi
       fi }
  /* a compensation arrives (Barrier.run op=compensate) */
  :: atomic { ncomp > 0 -> ncomp--;
       if
       :: rcomp != 0 -> skip
       :: rcomp == 0 ->
#ifndef NO_BLOCK
          if :: ract == 0 -> ract = REFUSED :: else fi;
#endif
          if
          :: ract != OK -> rcomp = NULLC
          :: ract == OK ->
             if
             :: rcomp = OK; comps++; assert(comps == 1); assert(actions == 1)
             :: skip                              /* retry */
             fi
          fi
       fi }
  od
}
