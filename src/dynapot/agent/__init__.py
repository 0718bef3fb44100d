"""The recorder agent for Linux backends: eBPF (bpftrace) events shipped as Sebek v3 records."""
