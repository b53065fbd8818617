"""The dead-letter queue, for operators (`make ops ARGS="dlq ..."`): what is on it, and
putting it back after a fix. One module per job:

- `scan`: reading the queue, each message once as a `DeadLetter`, held while a scan runs and
  released after it; `Selection`, the messages a command acts on;
- `summary`: the counts an operator reads (`dlq`, and `dlq replay --dry-run`);
- `journal`: the replay's memory across kills, and the protocol it keeps;
- `replay`: the journalled replay, any selection, nothing lost and nothing sent twice;
- `in_doubt`: what settles messages an interrupted send left in doubt (the dedupe table);
- `move_task`: an unfiltered replay as SQS's own message move task, run server-side.
- `erase`: a forgotten visitor's messages deleted, and no one else's (`forget`).

Reading a queue means receiving its messages, which hides each one for a while (the *hold*):
that is what keeps two readers, or one long scan, from seeing a message twice. Nothing else
reads the dead-letter queue (no event source is attached to it), so a hold delays nobody.
Messages are released again as soon as a scan is done.

Replay loses nothing and sends nothing twice, through any kill and rerun on the machine that
holds its journal (`journal` spells the protocol out). An unfiltered replay is SQS's own
message move task instead, which runs server-side. docs/operations.md says what each path
guarantees and what an operator does after an interruption. The command line is
`devtools.ops.cli`.
"""
