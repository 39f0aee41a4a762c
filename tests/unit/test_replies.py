import pytest

from relay.smtp import replies


@pytest.mark.parametrize("name", sorted(replies.ALL))
def test_code_and_enhanced_status_agree(name: str) -> None:
    reply = replies.ALL[name]
    assert str(reply.code)[0] == reply.status[0]
    assert reply.code in range(200, 600)
    assert "@" not in reply.text and "\r" not in reply.text and "\n" not in reply.text


def test_policy_reply_names_the_category() -> None:
    r = replies.reject_policy("messages may not contain links to websites")
    assert (r.code, r.status) == (550, "5.7.1") and "links" in r.text
