def check_print_ready(*a, **k): return []
def ensure_print_ready(*a, **k): return None
