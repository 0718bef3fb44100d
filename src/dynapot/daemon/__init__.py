"""`dynapot run`: the daemon that keeps the honeypots in step with the network.

It discovers (nmap on a schedule, a sniffer, ARP liveness sweeps), re-plans when the
picture moves, applies the plan to a supervised sensor process without restarting it,
correlates the sensor's events into findings, alerts, and expires old rows. All state is in
the database and the state folder, so a restart resumes the same deployment.
"""
