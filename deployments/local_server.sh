#!/usr/bin/env bash
# Start or stop a local Prefect server (SQLite under $PREFECT_HOME) in the background.
set -euo pipefail
PORT=${PORT:-4200}
UV=${UV:-uv}
HOME_DIR=${PREFECT_HOME:-$PWD/.prefect}
PID_FILE="$HOME_DIR/server-$PORT.pid"
LOG_FILE="$HOME_DIR/server-$PORT.log"
HEALTH="http://127.0.0.1:$PORT/api/health"

healthy() { python3 -c "import urllib.request,sys; urllib.request.urlopen('$HEALTH', timeout=2)" 2>/dev/null; }

case "${1:-start}" in
  start)
    if healthy; then echo "Prefect server already running: http://127.0.0.1:$PORT"; exit 0; fi
    mkdir -p "$HOME_DIR"
    echo "Starting a local Prefect server on http://127.0.0.1:$PORT (log: $LOG_FILE) ..."
    PREFECT_UI_API_URL="http://127.0.0.1:$PORT/api" PREFECT_HOME="$HOME_DIR" \
      nohup "$UV" run python -m deployments.sqlite_server --host 127.0.0.1 --port "$PORT" >"$LOG_FILE" 2>&1 &
    echo $! >"$PID_FILE"
    for _ in $(seq 1 180); do
      if healthy; then echo "Prefect server ready: UI at http://127.0.0.1:$PORT"; exit 0; fi
      if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then break; fi
      sleep 1
    done
    echo "The Prefect server did not start; last lines of $LOG_FILE:" >&2
    tail -n 30 "$LOG_FILE" >&2
    exit 1
    ;;
  stop)
    if [ -f "$PID_FILE" ]; then
      pid=$(cat "$PID_FILE")
      pkill -TERM -P "$pid" 2>/dev/null || true
      kill -TERM "$pid" 2>/dev/null || true
      rm -f "$PID_FILE"
      echo "Stopped the Prefect server on port $PORT."
    else
      echo "No Prefect server started by this project on port $PORT."
    fi
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
