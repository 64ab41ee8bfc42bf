"""Networks (:mod:`.mlp`) and the forward-mode derivative fast path (:mod:`.fastpath`, with the
Taylor rules in :mod:`.taylor` and the fused CPU loops in :mod:`.kernels`)."""
