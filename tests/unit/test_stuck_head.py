"""When a store sends its unacked events again: only for an ack that never came, under a new message id, backing
off while nothing moves."""
from edge.sync import StuckHead


def test_flowing_acks_never_resend():
    w = StuckHead()
    for t, head in enumerate(range(1, 200)):  # the oldest unacked event moves on every check
        assert not w.stuck(head, sent_upto=head + 5, now=t * 10.0)
    assert w.round == 0 and w.msg_id("E1") == "E1"


def test_a_head_unacked_for_30_s_is_sent_again_under_a_new_id_then_backs_off():
    w = StuckHead()
    assert not w.stuck(7, sent_upto=9, now=0.0)
    assert not w.stuck(7, sent_upto=9, now=29.0)
    assert w.stuck(7, sent_upto=9, now=30.0)
    assert w.round == 1 and w.msg_id("E7") == "E7~1"
    assert not w.stuck(7, sent_upto=9, now=80.0)  # next round only after 60 s more
    assert w.stuck(7, sent_upto=9, now=90.0) and w.msg_id("E7") == "E7~2"
    assert not w.stuck(7, sent_upto=9, now=200.0) and w.stuck(7, sent_upto=9, now=210.0)  # then 120 s
    assert not w.stuck(8, sent_upto=9, now=211.0)  # acks came: back to 30 s
    assert not w.stuck(8, sent_upto=9, now=240.0) and w.stuck(8, sent_upto=9, now=241.0)


def test_unsent_or_empty_outbox_is_not_stuck():
    w = StuckHead()
    assert not w.stuck(None, sent_upto=0, now=0.0) and not w.stuck(None, sent_upto=0, now=1000.0)
    assert not w.stuck(5, sent_upto=0, now=0.0)
    assert not w.stuck(5, sent_upto=0, now=1000.0)  # offline: nothing was sent, nothing to re-send


def test_checks_are_spaced():
    w = StuckHead()
    assert w.due(0.0) and not w.due(4.9) and w.due(5.0)
