"""Single sign-on sessions' provider tokens are encrypted at rest from now on.

The tokens stored before were plain text: they are forgotten rather than kept. A session signed
in through single sign-on is asked to sign in again the next time its roles are re-read.
"""

from django.db import migrations

import groups_app.fields


def forget_plain_tokens(apps, schema_editor):
    apps.get_model("groups_app", "ExternalSession").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("groups_app", "0027_jobs"),
    ]

    operations = [
        migrations.RunPython(forget_plain_tokens, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="externalsession",
            name="access_token",
            field=groups_app.fields.SealedTextField(blank=True, purpose="single sign-on access token"),
        ),
        migrations.AlterField(
            model_name="externalsession",
            name="refresh_token",
            field=groups_app.fields.SealedTextField(blank=True, purpose="single sign-on refresh token"),
        ),
    ]
