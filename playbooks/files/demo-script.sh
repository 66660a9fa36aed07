#!/bin/sh
# Installed by the local example playbook.
echo "demo script on $(hostname)"
