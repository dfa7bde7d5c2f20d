import os, time, sys
keys = ["pgscan_kswapd","pgsteal_kswapd","pgscan_direct","allocstall_normal","compact_stall","compact_daemon_wake","pgalloc_normal","pgfree","pgfault","pgmajfault","workingset_refault_file","drop_pagecache","pgpromote_success","thp_fault_alloc","nr_free_pages"]
def vm():
    d={}
    for l in open("/proc/vmstat"):
        k,v=l.split()
        if k in keys: d[k]=int(v)
    return d
def procs():
    out={}
    for p in os.listdir("/proc"):
        if not p.isdigit(): continue
        try:
            s=open(f"/proc/{p}/stat").read()
        except OSError: continue
        comm=s[s.index("(")+1:s.rindex(")")]
        f=s[s.rindex(")")+2:].split()
        out[int(p)]=(comm,int(f[11])+int(f[12]),int(f[36]))
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                if t==p: continue
                s=open(f"/proc/{p}/task/{t}/stat").read()
                comm=s[s.index("(")+1:s.rindex(")")]
                f=s[s.rindex(")")+2:].split()
                out[int(t)]=(comm,int(f[11])+int(f[12]),int(f[36]))
        except OSError: pass
    return out
def stat():
    l=open("/proc/stat").readline().split()
    return [int(x) for x in l[1:9]]
out=open(sys.argv[1],"w")
pv,pp,ps=vm(),procs(),stat()
while True:
    time.sleep(0.2)
    v,p,s=vm(),procs(),stat()
    t=time.time()
    busy=[(c,d,cpu,pid) for pid,(c,tk,cpu) in p.items() for d in [tk-pp.get(pid,(c,tk,0))[1]] if d>=2]
    dv={k:v[k]-pv.get(k,0) for k in v if k!="nr_free_pages"}
    ds=[a-b for a,b in zip(s,ps)]
    out.write(f"{t:.2f} free={v.get('nr_free_pages')} steal={ds[7]} " + " ".join(f"{k}={dv[k]}" for k in dv if dv[k]) + " | " + " ".join(f"{c}[{pid}]@{cpu}:{d}" for c,d,cpu,pid in sorted(busy,key=lambda x:-x[1])) + "\n")
    out.flush()
    pv,pp,ps=v,p,s
