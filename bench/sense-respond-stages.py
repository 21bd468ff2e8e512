#!/usr/bin/python3
"""Breaks bench/sense-respond.sh's latency down by stage, from the engines' SQLite databases.

  bench/sense-respond-stages.py WORK_DIR ACKS_FILE

ACKS_FILE holds "<customer id> <email> <acknowledged, Unix seconds>" a trigger
(ecrm-sense-respond-bench --acks-file). Per trigger, the stages end at:
  evaluated   segmentation evaluated the customer into the segment (campaign_sends.created_at)
  handed      broadcast created the batch's broadcast (broadcasts.created_at: CreateBroadcast)
  sent        broadcast recorded the delivery sent (deliveries.sent_at)
  accepted    the SMTP server accepted the mail (accepted_at in WORK_DIR/mail/msg-N.json)
Prints p50 / p99 / max of each stage's own time and of the total, in ms.
"""
import glob
import json
import sqlite3
import sys


def pct(values, q):
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]


def main():
    work, acks_file = sys.argv[1], sys.argv[2]
    acks = {}
    for line in open(acks_file):
        cid, email, at = line.split()
        if float(at) > 0:
            acks[cid] = (email, float(at))
    seg = sqlite3.connect("file:%s/segmentation.db?mode=ro" % work, uri=True)
    evaluated, batch_of = {}, {}
    for cid, created, broadcast in seg.execute("SELECT customer_id, created_at, broadcast_id FROM campaign_sends"):
        if cid in acks:
            evaluated[cid] = created / 1e6
            batch_of[cid] = broadcast
    bc = sqlite3.connect("file:%s/broadcast.db?mode=ro" % work, uri=True)
    handed = {b: c / 1e6 for b, c in bc.execute("SELECT id, created_at FROM broadcasts")}
    sent = {}
    for cid, s in bc.execute("SELECT customer_id, sent_at FROM deliveries WHERE sent_at > 0"):
        if cid in acks:
            sent[cid] = s / 1e6
    accepted = {}
    for path in glob.glob("%s/mail/msg-*.json" % work):
        meta = json.load(open(path))
        for rcpt in meta["rcpt_tos"]:
            accepted[rcpt] = meta["accepted_at"]
    stages = {"feed: acknowledged -> evaluated": [], "hand-over: evaluated -> broadcast created": [],
              "dispatch: broadcast created -> sent": [], "smtp: sent -> accepted": [], "total": []}
    for cid, (email, ack) in acks.items():
        if cid not in evaluated or batch_of.get(cid) not in handed or cid not in sent or email not in accepted:
            continue
        points = [ack, evaluated[cid], handed[batch_of[cid]], sent[cid], accepted[email]]
        for (name, values), a, b in zip(list(stages.items())[:4], points, points[1:]):
            values.append((b - a) * 1000)
        stages["total"].append((points[-1] - ack) * 1000)
    print("%d of %d triggers traced; ms:          p50       p99       max" % (len(stages["total"]), len(acks)))
    for name, values in stages.items():
        print("  %-42s %8.1f  %8.1f  %8.1f" % (name, pct(values, 0.5), pct(values, 0.99), pct(values, 1.0)))


if __name__ == "__main__":
    main()
