/* Two-phase commit with presumed abort and cooperative termination: 1 coordinator, 2
 * participants.
 *
 * @models microstatedb.protocols._twophase:Coordinator.receive
 * @models microstatedb.protocols._twophase:Coordinator.tick
 * @models microstatedb.protocols._twophase:Coordinator._recover
 * @models microstatedb.protocols._twophase:Participant.receive
 * @models microstatedb.protocols._twophase:Participant._prepare
 * @models microstatedb.protocols._twophase:Participant.tick
 * @models microstatedb.protocols._twophase:Coordinator._answer
 * @property all or nothing: no participant commits while another aborts
 * @property a participant commits only if every participant voted yes
 *
 * Messages may be lost (never delivered) or delivered in any order; decisions are resent. The
 * coordinator may crash once: its journal survives, so after a restart it finishes a recorded
 * decision or, finding none, aborts (presumed abort). Participants in doubt ask the
 * coordinator and each other; one that has not voted yes answers abort and will vote no.
 * A replica of the coordinator's store receives its journal late and is asked too.
 * Mutants: TERMINATE_AFTER_YES (a participant that voted yes answers a query with abort and
 * aborts itself), COMMIT_ON_TIMEOUT (the coordinator decides commit when votes are late),
 * REPLICA_TERMINATES (a coordinator replica that has not seen the decision answers abort).
 */
#define P 2
#define COMMIT 1
#define ABORT 2
byte cst;             /* coordinator: 0 collecting votes, 1 decided */
byte dec;             /* its durable decision */
byte votes[P];        /* volatile: 0 none, 1 yes, 2 no */
bool ccrash = 1;
byte pst[P];          /* participant: 0 nothing, 1 prepared (voted yes), 2 outcome */
byte pout[P];
bool votedyes[P];     /* ghost */
bool fprep[P]; byte fvote[P]; byte fdec[P];
bool fq[4];           /* [asker*2 + (0: to coordinator, 1: to the other participant)] */
byte fans[P];
byte rdec;            /* the coordinator replica's copy of the decision (0: not yet) */
bool fqr[P];           /* query to the coordinator replica */
byte resends = 2;

inline settle(j, v) {
  if
  :: pst[j] != 2 ->
     if
     :: v == COMMIT && pst[j] == 1 -> pout[j] = COMMIT;
        assert(votedyes[0] && votedyes[1]);
        assert(pout[1-j] != ABORT)
     :: else -> pout[j] = ABORT; assert(pout[1-j] != COMMIT)
     fi;
     pst[j] = 2
  :: else
  fi
}

inline decide(v) {
  cst = 1; dec = v; fdec[0] = v; fdec[1] = v
}

active proctype world() {
  byte j, v;
  atomic { fprep[0] = 1; fprep[1] = 1 }
  do
  /* a participant gets the prepare (_prepare): votes yes with intents, or no */
  :: atomic { select(j : 0 .. P-1);
       if
       :: fprep[j] -> fprep[j] = 0;
          if
          :: pst[j] == 2 -> fvote[j] = pout[j]
          :: pst[j] == 1 -> fvote[j] = COMMIT
          :: pst[j] == 0 -> pst[j] = 1; votedyes[j] = 1; fvote[j] = COMMIT
          :: pst[j] == 0 -> pst[j] = 2; pout[j] = ABORT; fvote[j] = ABORT
          fi
       :: else
       fi; j = 0 }
  /* the coordinator gets a vote (Coordinator.receive) */
  :: atomic { select(j : 0 .. P-1);
       if
       :: fvote[j] != 0 -> v = fvote[j]; fvote[j] = 0;
          if
          :: cst == 0 ->
             votes[j] = v;
             if
             :: v == ABORT -> decide(ABORT)
             :: v == COMMIT && votes[0] == COMMIT && votes[1] == COMMIT -> decide(COMMIT)
             :: else
             fi
          :: else
          fi
       :: else
       fi; j = 0; v = 0 }
  /* votes are late: the coordinator aborts (Coordinator.tick) */
  :: atomic { cst == 0 ->
#ifdef COMMIT_ON_TIMEOUT
       decide(COMMIT)
#else
       decide(ABORT)
#endif
     }
  /* decisions resent to every participant */
  :: atomic { cst == 1 && resends > 0 -> resends--; fdec[0] = dec; fdec[1] = dec }
  /* the coordinator crashes and restarts (_recover): presumed abort if undecided */
  :: atomic { ccrash -> ccrash = 0; votes[0] = 0; votes[1] = 0;
       if :: cst == 0 -> decide(ABORT) :: else -> fdec[0] = dec; fdec[1] = dec fi }
  /* a participant gets the decision */
  :: atomic { select(j : 0 .. P-1);
       if :: fdec[j] != 0 -> v = fdec[j]; fdec[j] = 0; settle(j, v) :: else fi; j = 0; v = 0 }
  /* a participant in doubt asks the coordinator and the other participant (tick) */
  :: atomic { select(j : 0 .. P-1);
       if :: pst[j] == 1 -> fq[j*2] = 1; fq[j*2+1] = 1; fqr[j] = 1 :: else fi; j = 0 }
  /* the coordinator's journal replicates to its replica */
  :: atomic { cst == 1 && rdec == 0 -> rdec = dec }
  /* the replica answers from what it has (Coordinator._answer on a replica) */
  :: atomic { select(j : 0 .. P-1);
       if
       :: fqr[j] -> fqr[j] = 0;
          if
          :: rdec != 0 -> fans[j] = rdec
#ifdef REPLICA_TERMINATES
          :: rdec == 0 -> fans[j] = ABORT
#else
          :: rdec == 0 -> skip
#endif
          fi
       :: else
       fi; j = 0 }
  /* the coordinator answers a query from its journal (a decision, or nothing yet) */
  :: atomic { select(j : 0 .. P-1);
       if :: fq[j*2] -> fq[j*2] = 0; if :: cst == 1 -> fans[j] = dec :: else fi :: else fi; j = 0 }
  /* the other participant answers a query (cooperative termination) */
  :: atomic { select(j : 0 .. P-1);
       if
       :: fq[j*2+1] -> fq[j*2+1] = 0;
          if
          :: pst[1-j] == 0 -> pst[1-j] = 2; pout[1-j] = ABORT; assert(pout[j] != COMMIT);
             fans[j] = ABORT
          :: pst[1-j] == 2 -> fans[j] = pout[1-j]
#ifdef TERMINATE_AFTER_YES
          :: pst[1-j] == 1 -> pst[1-j] = 2; pout[1-j] = ABORT; fans[j] = ABORT
#else
          :: pst[1-j] == 1 -> skip
#endif
          fi
       :: else
       fi; j = 0 }
  /* a participant in doubt gets an answer */
  :: atomic { select(j : 0 .. P-1);
       if :: fans[j] != 0 -> v = fans[j]; fans[j] = 0; if :: pst[j] == 1 -> settle(j, v) :: else fi
       :: else fi; j = 0; v = 0 }
  od
}
