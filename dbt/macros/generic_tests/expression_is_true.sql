{# Fails for every row where the SQL expression is false (like dbt_utils', without the package). #}
{% test expression_is_true(model, expression, column_name=none, where=none) %}
select *
from {{ model }}
where not ({{ expression }})
{% if where %} and {{ where }} {% endif %}
{% endtest %}
