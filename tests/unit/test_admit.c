/*
 * test_admit.c - unit tests of server/admit.c's decision (cmocka):
 * admit_decide() is pure (the caller passes the clock), so the queue-time
 * bound, the controlled-delay regime of a standing queue and its memory,
 * and the in-flight bound are checked with made-up times.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../server/admit.h"

#define MS 1000 /* us */
#define QT 100  /* queue_timeout_ms */

static void test_fresh_and_late(void **state)
{
    (void)state;
    admit_queue_t q;
    int64_t t0 = 1000000000;
    admit_queue_init(&q, t0);
    /* a queue that just drained: the full bound */
    assert_int_equal(admit_decide(&q, 0, t0, t0 + 99 * MS, QT, 10), ADMIT_OK);
    assert_int_equal(admit_decide(&q, 0, t0, t0 + 100 * MS, QT, 10), ADMIT_OK);
    admit_queue_init(&q, t0);
    assert_int_equal(admit_decide(&q, 0, t0, t0 + 100 * MS + 1, QT, 10), ADMIT_QUEUE_TIMEOUT);
    /* 0 turns the age check off */
    admit_queue_init(&q, t0);
    assert_int_equal(admit_decide(&q, 0, t0, t0 + 3600000 * (int64_t)MS, 0, 10), ADMIT_OK);
}

static void test_inflight_bound(void **state)
{
    (void)state;
    admit_queue_t q;
    admit_queue_init(&q, 0);
    assert_int_equal(admit_decide(&q, 9, 0, 1, QT, 10), ADMIT_OK);
    assert_int_equal(admit_decide(&q, 10, 0, 1, QT, 10), ADMIT_INFLIGHT);
    /* too old wins: it is the reason counted */
    assert_int_equal(admit_decide(&q, 10, 0, 500 * MS, QT, 10), ADMIT_QUEUE_TIMEOUT);
}

static void test_standing_queue_is_held_to_target(void **state)
{
    (void)state;
    admit_queue_t q;
    int64_t t0 = 1000000000, now;
    admit_queue_init(&q, t0);
    /* the queue has not drained for more than an interval: 5 ms */
    now = t0 + 150 * MS;
    assert_int_equal(admit_decide(&q, 0, now - 6 * MS, now, QT, 10), ADMIT_QUEUE_TIMEOUT);
    assert_int_equal(admit_decide(&q, 0, now - 4 * MS, now, QT, 10), ADMIT_OK);
    /* it drains for a moment: still held, the overload is recent */
    admit_queue_empty(&q, now + 1 * MS);
    now += 2 * MS;
    assert_int_equal(admit_decide(&q, 0, now - 20 * MS, now, QT, 10), ADMIT_QUEUE_TIMEOUT);
    /* ADMIT_MEMORY intervals later, drained all along: the full bound again */
    now += (ADMIT_MEMORY * QT + 1) * MS;
    admit_queue_empty(&q, now);
    assert_int_equal(admit_decide(&q, 0, now - 20 * MS, now, QT, 10), ADMIT_OK);
}

/* An empty mark from older bytes (read into an empty input after the node
 * last saw it empty) never moves the mark back: the queue does not turn
 * standing because its bytes sat in the kernel a while. */
static void test_empty_mark_never_moves_back(void **state)
{
    (void)state;
    admit_queue_t q;
    int64_t t0 = 1000000000, now = t0 + 50 * MS;
    admit_queue_init(&q, t0);
    admit_queue_empty(&q, now);
    admit_queue_empty(&q, now - 40 * MS); /* bytes that arrived earlier */
    now += 70 * MS;                       /* 120 ms after t0, 70 after the newer mark */
    assert_int_equal(admit_decide(&q, 0, now - 20 * MS, now, QT, 10), ADMIT_OK);
}

static void test_target_never_above_timeout(void **state)
{
    (void)state;
    admit_queue_t q;
    admit_queue_init(&q, 0);
    /* queue_timeout_ms below the target: the timeout is the only bound */
    assert_int_equal(admit_decide(&q, 0, 10 * MS, 12 * MS, 2, 10), ADMIT_OK);
    assert_int_equal(admit_decide(&q, 0, 10 * MS, 13 * MS, 2, 10), ADMIT_QUEUE_TIMEOUT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_and_late),
        cmocka_unit_test(test_inflight_bound),
        cmocka_unit_test(test_standing_queue_is_held_to_target),
        cmocka_unit_test(test_empty_mark_never_moves_back),
        cmocka_unit_test(test_target_never_above_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
