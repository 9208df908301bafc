"""One line per check, ok or FAIL, and the failures kept, so that one run of
a deploy test reports every problem rather than the first."""

failures = []


def check(condition, message):
    print(("ok: " if condition else "FAIL: ") + message)
    if not condition:
        failures.append(message)
    return condition
