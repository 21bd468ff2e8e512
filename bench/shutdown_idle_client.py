#!/usr/bin/python3
"""An idle grpcio client for ecrm-shutdown-bench: connects to host:port, makes one health
Check, prints "ready" and then holds the channel without using it until it is killed."""
import sys
import time

import grpc  # Debian: python3-grpcio

channel = grpc.insecure_channel(sys.argv[1])
check = channel.unary_unary("/grpc.health.v1.Health/Check")  # bytes in, bytes out
check(b"", timeout=5)  # an empty HealthCheckRequest: the whole server
print("ready", flush=True)
while True:
    time.sleep(3600)
