"""Speed and memory measurements of the course code against the classic approach (make bench)."""
