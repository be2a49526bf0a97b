-- wake: top the wake-up tokens up again (one per queued task, at most 64). Run when a blocked pop was
-- cancelled: the server may have popped a token for it that nobody will use.
-- ARGV: base. Returns 1.
wake(ARGV[1])
return 1
