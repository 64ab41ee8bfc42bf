"""What is solved: the problem interface (:mod:`.problem`), differential operators on autograd
(:mod:`.operators`), finite differences for references (:mod:`.fd`) and the reference cache
(:mod:`.cache`)."""
